"""The same scenario without the mistakes: mypy --strict finds nothing."""

from voxline import AppEvents, CallEvents, OpenAI, VoxEngine
from voxline.eventtarget import Event
from voxline.runtime.event_types import CallAlertingEvent, CallDisconnectedEvent


async def on_call(event: CallAlertingEvent) -> None:
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"), model="gpt-realtime", auto_truncate=True
    )

    def on_done(e: Event) -> None:
        print(e.data)

    def on_hangup(e: CallDisconnectedEvent) -> None:
        print(e.reason, e.initiator)
        VoxEngine.terminate()

    client.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseDone, on_done)
    client.add_event_listener("response.done", on_done)
    call.add_event_listener(CallEvents.Disconnected, on_hangup)
    VoxEngine.send_media_between(call, client)


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
