"""A typed scenario with two mistakes mypy must report (tests/typing/test_typed_api.py)."""

from voxline import AppEvents, OpenAI, VoxEngine
from voxline.eventtarget import Event
from voxline.runtime.event_types import CallAlertingEvent


async def on_call(event: CallAlertingEvent) -> None:
    call = event.call
    call.answer()
    client = await OpenAI.create_realtime_api_client(
        api_key=VoxEngine.get_secret_value("OPENAI_API_KEY"),
        modle="gpt-realtime",  # misspelt: model
    )

    def on_done(e: Event) -> None:
        print(e.data)

    client.add_event_listener("Not.AnEvent", on_done)  # no such event
    client.add_event_listener(OpenAI.RealtimeAPIEvents.ResponseDone, on_done)  # fine
    client.add_event_listener("response.done", on_done)  # fine: the provider's type


VoxEngine.add_event_listener(AppEvents.CallAlerting, on_call)
