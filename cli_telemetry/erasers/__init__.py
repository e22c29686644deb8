"""The providers' deletion APIs, driven by the collector: one `Eraser` per provider whose
API can delete what our sink sent it (`cli_telemetry.sinks.base.Eraser`).

Each needs a secret that only a server holds (a personal API key, a GDPR token, a secret
key), so only the collector builds them (`cli_telemetry.providers.erasers_from_environ`);
a tool never does. PostHog, Mixpanel and Amplitude have one; Segment and RudderStack have one
only when the author opts in to sending the install id as ``userId`` too (``user_id=
"install"``), because their deletion APIs find a user by ``userId`` and our events otherwise
carry only an ``anonymousId`` (see docs/operators/forgetting.md, "At each provider").
"""

from __future__ import annotations

__all__: list[str] = []
