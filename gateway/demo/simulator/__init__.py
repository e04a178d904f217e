"""A simulated compound: every registered device of a site speaking Lianfang device JSON v1.

``FleetModel`` decides what the devices say (seeded, logical time, no I/O);
``run_simulator`` publishes it over MQTT in real time (async; paho's network thread).
"""

from gateway.demo.simulator.model import SCENARIOS, FleetModel, OutMessage
from gateway.demo.simulator.runner import SimulatorStats, run_simulator

__all__ = ["SCENARIOS", "FleetModel", "OutMessage", "SimulatorStats", "run_simulator"]
