"""BookedBarber V2 agent system: the library behind the console, the API, the worker and the CLI."""
