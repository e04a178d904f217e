"""YAML device profiles: a new device type is a data file under ``config/profiles/``."""

from device_adapters.profiles.engine import ProfileAdapter
from device_adapters.profiles.loader import load_profiles
from device_adapters.profiles.schema import Profile

__all__ = ["Profile", "ProfileAdapter", "load_profiles"]
