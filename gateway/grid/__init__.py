"""The grid (网格): street office → community → cell (→ micro-grid), places, police beats,
households and their 十户联防 neighbour groups, and the people who work the grid.

``model`` holds the strict configuration models and their loader (YAML and CSV under
``config/grid/``), ``tables`` the database tables, ``store`` import/export between the two,
``directory`` the in-memory snapshot used at send time to resolve roles into receivers.
"""

from gateway.grid.directory import GridDirectory
from gateway.grid.model import GridConfig, Role, load_grid

__all__ = ["GridConfig", "GridDirectory", "Role", "load_grid"]
