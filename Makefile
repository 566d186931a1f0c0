# Benchmarks (see docs/benchmarks.md). Results: bench/results/ (raw JSON + report.md).
PYTHON ?= .venv/bin/python
PIPECAT_VENV ?= bench/.venv-pipecat
PIPECAT_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null) python3)
PIPECAT_VERSION ?= 1.14.0

.PHONY: bench bench-quick bench-metrics bench-srtp bench-voxline bench-workers bench-setup bench-tts bench-webrtc

# Pipecat in its own virtualenv (it pins its own websockets, numpy ... versions).
$(PIPECAT_VENV)/bin/python:
	$(PIPECAT_PYTHON) -m venv $(PIPECAT_VENV)
	$(PIPECAT_VENV)/bin/pip install -q "pipecat-ai[websocket,openai]==$(PIPECAT_VERSION)" "uvicorn>=0.30"

bench-setup: $(PIPECAT_VENV)/bin/python
	$(PYTHON) -m pip install -q py-spy

# The full run: capacity search for voxline (G.711 and 24 kHz, Twilio and SIP/RTP callers) and Pipecat,
# profile of voxline at capacity, report in bench/results/report.md. About 17 minutes on 2 cores.
bench: bench-setup
	$(PYTHON) bench/run.py --profile $(BENCH_ARGS)
	cd bench && ../$(PYTHON) webrtc_cost.py

# WebRTC (Opus) calls next to SIP/RTP G.711 and 24 kHz: CPU per call-minute (docs/webrtc.md). ~80 s.
bench-webrtc:
	cd bench && ../$(PYTHON) webrtc_cost.py $(BENCH_WEBRTC_ARGS)

# A few minutes: two N values per configuration, short steps.
bench-quick: bench-setup
	$(PYTHON) bench/run.py --steps 25,100 --pipecat-steps 10,25 --duration 8 --warmup 2 --keep-going $(BENCH_ARGS)

# Metrics on (scraped) against off, on the Twilio and SIP G.711 paths, in one run.
bench-metrics:
	$(PYTHON) bench/run.py --only voxline-twilio-g711,voxline-twilio-g711-metrics-off,voxline-rtp-g711,voxline-rtp-g711-metrics-off --steps 10,50 --keep-going $(BENCH_ARGS)

# voxline only (no Pipecat virtualenv needed).
# voxline run --workers 1 and --workers 2 side by side, with the 16-core estimate.
bench-workers:
	$(PYTHON) bench/run.py --only voxline-twilio-g711-workers1,voxline-twilio-g711-workers2,voxline-rtp-g711-workers1,voxline-rtp-g711-workers2 --keep-going $(BENCH_ARGS)

# SIP/RTP G.711 calls with plain RTP and with SRTP (SDES, AES_CM_128_HMAC_SHA1_80), side by side.
bench-srtp:
	$(PYTHON) bench/run.py --only voxline-rtp-g711,voxline-rtp-g711-srtp --steps 10,25,50 --keep-going $(BENCH_ARGS)

bench-voxline:
	$(PYTHON) bench/run.py --only voxline-twilio-g711,voxline-twilio-pcm24k,voxline-rtp-g711,voxline-rtp-pcm24k $(BENCH_ARGS)

# Half-cascade with the embedded voice: text delta -> first audio, CPU per call-minute next to S2S.
bench-tts:
	$(PYTHON) bench/tts_cost.py $(BENCH_ARGS)
