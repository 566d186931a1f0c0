"""Voxy hands the caller to a person: a blind transfer (SIP REFER) when the model calls a tool.

    TRANSFER_URI=sip:desk@pbx.example.com voxline run examples/blind_transfer.py

The model gets a ``transfer_to_human`` tool. When it calls it, ``call.transfer`` asks the caller's
side to call ``TRANSFER_URI`` instead (REFER). On success the caller is with the person and the call
to us is hung up (``Disconnected``, reason ``transferred``); when the person is busy or the REFER is
refused (``TransferFailed``), the model is told and goes on with the caller.

The other way round: a peer that REFERs this call elsewhere (a PBX user pressing "transfer") gets
its request accepted here when the target is on a host in ``REFER_ALLOW`` (comma-separated, default
127.0.0.1; others get 403): Voxy calls the target itself (``VoxEngine.call_sip``), the outcome goes
back to the peer in NOTIFYs, and the model goes on with the new call.
"""

import json

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine

TOOLS = [
    {
        "type": "function",
        "name": "transfer_to_human",
        "description": "Hand the caller to a person of the shop's staff, when asked or when you cannot help.",
        "parameters": {"type": "object", "properties": {}},
    }
]


def secret(name, default=None):
    try:
        return VoxEngine.get_secret_value(name)
    except KeyError:
        return default


async def on_call(event):
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        on_web_socket_close=lambda e: VoxEngine.terminate(),
    )
    client.session_update(
        {
            "session": {
                "type": "realtime",
                "instructions": "You are Voxy of the Corner Shop. Offer to put callers through to a person.",
                "tools": TOOLS,
            }
        }
    )
    VoxEngine.send_media_between(call, client)
    client.response_create({})
    pending = {}  # the tool call waiting for the transfer's outcome

    def on_item_done(e):
        item = e.data["item"]
        if item.get("type") == "function_call" and item.get("name") == "transfer_to_human":
            pending["call_id"] = item["call_id"]
            call.transfer(secret("TRANSFER_URI", "sip:human@127.0.0.1:5090"))

    def on_transfer_failed(e):
        # The caller is still with us: tell the model, which tells the caller.
        output = {"transferred": False, "sip_status": e.code, "reason": e.reason}
        client.conversation_item_create(
            {
                "item": {
                    "type": "function_call_output",
                    "call_id": pending.pop("call_id", ""),
                    "output": json.dumps(output),
                }
            }
        )
        client.response_create({})

    client.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseOutputItemDone, on_item_done)
    client.add_event_listener(
        OpenAI.RealtimeAPIEvents.InputAudioBufferSpeechStarted, lambda e: client.clear_media_buffer()
    )
    call.add_event_listener(CallEvents.TransferFailed, on_transfer_failed)
    # After a transfer (ours: TransferComplete hangs up) or a hang-up, the session is over.
    moved = {}

    def on_disconnected(e):
        if "call" not in moved:
            VoxEngine.terminate()

    call.add_event_listener(CallEvents.Disconnected, on_disconnected)

    def on_transfer_requested(e):
        # The peer wants this call to go on with e.target: call it and carry the conversation over.
        # Only to the hosts allowed: a caller must not make us dial wherever it likes (toll fraud).
        allowed = secret("REFER_ALLOW", "127.0.0.1").split(",")
        host = e.target.partition("@")[2].split(";")[0].split(":")[0]
        if not e.target.startswith("sip:") or host not in allowed:
            e.reject(403)
            return
        target = VoxEngine.call_sip(e.target)
        e.accept(target)  # 202; the peer hears how the call to the target goes
        moved["call"] = target
        target.add_event_listener(
            CallEvents.Connected, lambda ev: VoxEngine.send_media_between(target, client)
        )
        # Not reached: the peer keeps its call with us (it hangs up only after a success).
        target.add_event_listener(CallEvents.Failed, lambda ev: moved.pop("call", None))
        target.add_event_listener(CallEvents.Disconnected, lambda ev: VoxEngine.terminate())

    call.add_event_listener(CallEvents.TransferRequested, on_transfer_requested)


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
