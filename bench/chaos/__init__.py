"""The chaos bench (bench/chaos.py): faults injected into a running gateway, counted.

accounting (pure counts), site (configuration), stack (broker, gateway process, database
reads), load (publisher, police desk, prober), proxy (a cuttable PostgreSQL path), sinks
(webhook and SMS receivers), faults (what each fault does), runner (one fault end to end).
See docs/chaos.md.
"""
