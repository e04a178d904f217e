"""Configuration: strict YAML models with errors that name the file, key path and reason."""

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_model, load_yaml

__all__ = ["ConfigError", "ConfigErrors", "load_model", "load_yaml"]
