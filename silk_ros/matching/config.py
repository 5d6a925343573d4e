"""The matchers' settings in the odometry: one for tracking, one that re-matches keyframe candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..schema import ConfigError, setting

__all__ = ["MatchingConfig", "MATCHERS"]

MATCHERS = ("mnn", "ratio", "double_softmax", "attention")


@dataclass(frozen=True)
class MatchingConfig:
    """Which matchers the odometry builds (``silk_ros.matching.build_matcher`` specs)."""

    #: Every frame against its keyframe (tracking).
    matcher: str = setting("mnn", "descriptor matcher of every frame against its keyframe", choices=MATCHERS)
    #: More of the tracking matcher's settings, e.g. ``{ratio: 0.8}``; a ROS parameter holds it as a YAML string.
    matcher_options: dict = setting({}, "extra matcher settings as a YAML mapping, e.g. '{ratio: 0.8}'")
    #: Re-matches a frame about to become a keyframe (or to initialise the map) against its keyframe: the new map
    #: is triangulated from its matches.  ``auto``: the attention matcher for SiLK features whose descriptors it
    #: takes and whose weights show it no less accurate than MNN on pose (``attention.loses_to_mnn``), else
    #: ``none`` (the tracking matches); or a matcher spec (a name or ``{name: ..., ...}``).
    keyframe_matcher: Any = setting(
        "auto",
        "re-matches keyframe candidates (auto: attention where its weights show it no worse than MNN on pose, "
        "none: the tracking matches)",
        choices=("auto", "none", *MATCHERS),
    )

    #: A learned keyframe matcher keeps fewer, surer matches than MNN; on low texture and blur that thins the new map
    #: (design rooms: a low-texture room's ATE 0.033 -> 0.147 m).  With this, its matches build the map only when
    #: they give at least as many pose inliers as the tracking matches.  Chosen on the design set (session 30).
    keyframe_no_thinner: bool = setting(
        True, "use the keyframe matcher's matches only when they give at least as many pose inliers as tracking's"
    )

    def __post_init__(self) -> None:
        if isinstance(self.matcher, dict):  # a whole spec, {name: attention, backend: onnxruntime}
            spec = dict(self.matcher)
            object.__setattr__(self, "matcher", spec.pop("name"))
            object.__setattr__(self, "matcher_options", {**self.matcher_options, **spec})
        if not isinstance(self.matcher_options, dict):
            raise ConfigError(f"matcher_options must be a mapping, got {self.matcher_options!r}")

    @property
    def tracking_spec(self) -> dict[str, Any]:
        """The tracking matcher as a ``build_matcher`` spec."""
        return {"name": self.matcher, **self.matcher_options}
