"""The Octavia job service: gRPC API, job store and event log, job runner, dubbing engine."""
