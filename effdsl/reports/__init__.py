"""Family reports: phi sweeps and diffs between members.

Never imports torch. May import everything up to :mod:`effdsl.api`.
"""

from effdsl.reports.family import *  # noqa: F401,F403
