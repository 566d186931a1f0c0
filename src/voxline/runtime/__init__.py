"""The scenario runtime: call sessions, calls, the VoxEngine facade, the server and its CLI."""
