"""Demo and load data: the checklist's setup_agent_testing.py --test-data=minimal, and more."""
