"""Every setting lbsync has, declared once, and the one place they are merged.

Precedence, highest first: command-line flag > `LBSYNC_<NAME>` environment variable >
YAML settings file (`--config`) > the default declared here. Each field documents
itself (help text, unit, why the default); the CLI's flags, the env names and the
YAML keys are all derived from these declarations, so they cannot drift apart.
Must not know about Kubernetes, templates or HAProxy processes.

Three parts, read in this order:
- `fields`:  the frozen `Settings` dataclass, each field with its help text and kind;
- `loading`: YAML file + `LBSYNC_*` environment + flags merged into one `Settings`;
- `checks`:  value checks (durations, ADDRESS:PORT, names, CIDRs, node options).
Callers import from `lbsync.settings`, never from the parts.
"""
from lbsync.exceptions import SettingsError  # raised by all three parts; callers catch it from here
from lbsync.settings.checks import NODE_ADDRESS_TYPES, duration_ms
from lbsync.settings.fields import DEFAULT_DENY, FIELDS, Settings
from lbsync.settings.loading import (ENV_PREFIX, add_arguments, from_args, from_env, from_file, load,
                                     reference)

__all__ = ["DEFAULT_DENY", "ENV_PREFIX", "FIELDS", "NODE_ADDRESS_TYPES", "Settings", "SettingsError",
           "add_arguments", "duration_ms", "from_args", "from_env", "from_file", "load", "reference"]
