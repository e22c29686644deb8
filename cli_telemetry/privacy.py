"""A tool's privacy page, for the people who use it: ``click-telemetry schema --privacy``.

The page says first, in plain words, what the tool records, why, who receives it, how to
stop it and how to have it deleted, with the tool's real name, commands, variables, files
and destinations; then the technical details (`cli_telemetry.describe.markdown`: the field
table of `cli_telemetry.events`, the recorded option values, the custom events). Everything
comes from the tool's `Telemetry` object; what only the author knows (who collects, how to
reach them, why, for how long) comes from its `cli_telemetry.Privacy`, and each detail left
out is a visible ``<placeholder>`` and a warning.

The summary is written for someone who has never programmed: short sentences, everyday
words, no word of the trade that it does not explain. ``tests/test_privacy_page.py`` holds
it to that (a list of jargon, a sentence length, a Flesch reading-ease score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from ._paths import by_system
from ._settings import COLLECTOR_TARGET
from .deletion import EVENTS_ONLY, LIFETIME
from .describe import markdown, recorded_options
from .events import FIELDS

if TYPE_CHECKING:
    from .providers import Provider
    from .telemetry import Telemetry

DETAILS_HEADING: Final = "## The details, piece by piece"
"""Where the plain-language summary ends and the technical details begin."""

_SERVICES: Final = {
    "cli_telemetry.sinks.posthog:PostHogSink": (
        "PostHog",
        "host",
        {
            "us.i.posthog.com": "the United States",
            "app.posthog.com": "the United States",
            "eu.i.posthog.com": "the European Union",
            "eu.posthog.com": "the European Union",
        },
    ),
    "cli_telemetry.sinks.segment:SegmentSink": (
        "Segment",
        "host",
        {"api.segment.io": "the United States", "events.eu1.segmentapis.com": "the European Union"},
    ),
    "cli_telemetry.sinks.mixpanel:MixpanelSink": (
        "Mixpanel",
        "host",
        {
            "api.mixpanel.com": "the United States",
            "api-eu.mixpanel.com": "the European Union",
            "api-in.mixpanel.com": "India",
        },
    ),
    "cli_telemetry.sinks.amplitude:AmplitudeSink": (
        "Amplitude",
        "host",
        {"api2.amplitude.com": "the United States", "api.eu.amplitude.com": "the European Union"},
    ),
    "cli_telemetry.sinks.rudderstack:RudderStackSink": ("RudderStack", "data_plane_url", {}),
}
"""The analytics services, the option that holds their address, and where the address
that each offers puts the data (a host not listed is named as it is)."""

_LOCAL_HOSTS: Final = ("localhost", "127.0.0.1", "::1")


def page(telemetry: Telemetry, target: str) -> tuple[str, list[str]]:
    """The privacy page of ``telemetry``'s tool, loaded from ``target`` (named in the page,
    so that the author knows how it was made), and the warnings for its author: each
    detail left as a ``<placeholder>``, and each destination it cannot name."""
    config = telemetry.config
    tool, prefix, privacy = config.tool, config.env_prefix, config.privacy
    warnings: list[str] = []

    def declared(value: str | None, field: str, what: str) -> str:
        if value:
            return value
        warnings.append(
            f"warning: {field} is not declared, so the page says <{what}>: declare it in"
            f" Telemetry(..., privacy=Privacy({field}=...))"
        )
        return f"<{what}>"

    who = declared(privacy.collected_by, "collected_by", "who collects the data")
    contact = declared(privacy.contact, "contact", "how to contact them")
    purpose = declared(privacy.purpose, "purpose", "why the data is collected")
    if privacy.retention_days is None:
        warnings.append(
            "warning: retention_days is not declared, so the page says <how long the data is"
            " kept>: declare it in Telemetry(..., privacy=Privacy(retention_days=...))"
        )
        kept = "<how long the data is kept>"
    else:
        kept = _days(privacy.retention_days)
    destinations, asked, not_asked = _destinations(config.endpoint, config.sinks, warnings)
    sections = [
        f"# {tool}: what it records about its use, and how to stop it",
        "",
        f"<!-- Made by `click-telemetry schema --privacy {target}` from {tool}'s own settings. -->",
        "",
        f"This page is for the people who use {tool}. It says what {tool} records about how"
        " you use it, why, and who receives it. It also says how to stop it, and how to have"
        " the records deleted.",
        "",
        "## What it records",
        "",
        *_what(telemetry),
        "",
        "## Why",
        "",
        f'{_capital(who)} collects the records (this page calls them "the author").'
        f" They use them {purpose.rstrip('.')}.",
        "",
        "## When it starts",
        "",
        *_when(tool, config.consent),
        "",
        "## Who receives it",
        "",
        *_who(tool, destinations, privacy.forwarded_to, services=bool(not_asked)),
        "",
        "## The random number",
        "",
        f"Each record holds a random number. {tool} makes it the first time it records"
        " something, and keeps it on your computer. It is not made from your name, nor from"
        f" anything about your computer, and every tool has its own. The same number comes"
        f" with all your records. So whoever receives them can tell that two records came"
        f" from the same copy of {tool}, but not whose copy it is.",
        "",
        "Data like this is called *pseudonymous*. It does not name you, but it is not"
        " anonymous either, because your records are linked to each other by that number."
        f" When you turn recording off, {tool} deletes the number. If you turn it on again,"
        " it makes a new one, with no link to the old one.",
        "",
        "## How to stop it",
        "",
        *_stop(tool, prefix),
        "",
        "## How to have it deleted",
        "",
        *_delete(tool, who, contact, kept, asked, not_asked, bool(privacy.forwarded_to)),
        "",
        "## Where its files are",
        "",
        *_files(tool, config.max_events),
        "",
        markdown(telemetry, level=2, title=DETAILS_HEADING[3:]).rstrip(),
    ]
    return "\n".join(sections) + "\n", warnings


def _what(telemetry: Telemetry) -> list[str]:
    tool = telemetry.tool
    phrases: list[str] = []
    for field in FIELDS:
        if field.plain is not None:
            phrase = field.plain.replace("{tool}", tool)
            if phrase not in phrases:
                phrases.append(phrase)
    lines = [
        f"Each time you use {tool}, it makes a short record of that use. Each record holds:",
        "",
        *(f"- {phrase};" for phrase in phrases[:-1]),
        f"- {phrases[-1]}.",
        "",
    ]
    options, _ = recorded_options(telemetry)
    if options:
        lines += [
            "For these options, it also records the value you chose, but only when it is one"
            " of the values listed here:",
            "",
        ]
        for option in options.values():
            values = [f"`{_word(value)}`" for value in option.values]
            lines.append(f"- {' or '.join(f'`{n}`' for n in option.names)}: {_either(values)}.")
        lines.append("")
    catalog = telemetry.catalog
    if catalog:
        lines += ["Some commands also record a little more:", ""]
        for spec in catalog:
            noted = [_lower(p.description) or f"`{p.name}`" for p in spec.properties]
            what = f" It records {_and(noted)}." if noted else ""
            lines.append(f"- `{spec.name}`: {spec.description.strip()}{what}")
        lines.append("")
    lines += [
        f"Asking {tool} for help (`{tool} --help`) counts as a use, and is recorded too."
        f" Using the commands this page names (`{tool} telemetry ...`) is never recorded.",
        "",
        f"{tool} never records what you type after a command or an option: no file names,"
        " web addresses, names, passwords or other text. It never records your user name,"
        " your computer's name, your internet address (IP address), or error messages.",
    ]
    return lines


def _when(tool: str, consent: str) -> list[str]:
    if consent == "prompt":
        return [
            f"{tool} asks you once, in a terminal window, whether it may record how you use"
            " it. It records nothing unless you answer yes. It never asks when a script runs"
            " it, and then records nothing. If the author changes what it records, it asks"
            " again, but never after you said no.",
        ]
    return [
        f"The first time you use {tool} in a terminal window, it shows a short message about"
        " this, and records nothing for that use. From then on, it records each use, until"
        f" you turn it off. If {tool} only ever runs from scripts, where nobody sees the"
        " message, it records nothing. If the author changes what it records, the message is"
        " shown again.",
    ]


def _who(
    tool: str, destinations: list[str], forwarded_to: tuple[str, ...], *, services: bool
) -> list[str]:
    if not destinations:
        return [
            f"Nobody: {tool} is set up to send the records nowhere. They stay on your computer."
        ]
    lines = [
        f"After a command has finished, {tool} sends its records in the background, so it"
        " does not slow you down. They are sent to:",
        "",
        *(f"- {where};" for where in destinations[:-1]),
        f"- {destinations[-1]}.",
        "",
    ]
    if forwarded_to:
        lines += [
            "From there, they are passed on to:",
            "",
            *(f"- {where};" for where in forwarded_to[:-1]),
            f"- {forwarded_to[-1]}.",
            "",
        ]
    lines.append(
        "They go nowhere else. Until they are sent, they wait in a file on your computer."
        " Like any website, the receiving server sees the internet address the records come"
        " from, but the records themselves never hold it."
    )
    if services:
        lines[-1] += " The analytics services are told not to use it to find where you are."
    return lines


def _stop(tool: str, prefix: str) -> list[str]:
    return [
        "Any one of these stops it:",
        "",
        f"- Type `{tool} telemetry disable` in your terminal. This also deletes what waits"
        " on your computer, and your random number (see below).",
        "- Set `DO_NOT_TRACK=1`, as shown below. Many tools obey this setting, so it stops"
        " them all.",
        f"- Set `{prefix}_TELEMETRY_DISABLED=1`, the same way. This stops {tool} only.",
        "",
        "To set `DO_NOT_TRACK=1` for good on Linux or macOS, add the line"
        " `export DO_NOT_TRACK=1` to the file your terminal reads when it starts. That file"
        " is `~/.zshrc` on a Mac, or `~/.bashrc` on most Linux systems. On Windows, type"
        " `setx DO_NOT_TRACK 1` in a terminal, then open a new one.",
        "",
        f"To check, run `{tool} telemetry status`. It says whether recording is on, and why."
        f" To turn it back on, run `{tool} telemetry enable`. To see what would be sent,"
        f" without sending anything, set `{prefix}_TELEMETRY_DEBUG=1`. Each record is then"
        " shown in your terminal instead.",
    ]


def _delete(
    tool: str,
    who: str,
    contact: str,
    kept: str,
    asked: list[str],
    not_asked: list[str],
    forwarded: bool,
) -> list[str]:
    days = round(LIFETIME / 86400)
    lines = [
        f"When you run `{tool} telemetry disable`, {tool} at once deletes the records that"
        " wait on your computer, and your random number.",
    ]
    if asked:
        lines += [
            "",
            f"It also sends one last message to {_and(asked)}, asking to delete every record"
            " that holds your random number. That message says nothing about how you used"
            f" {tool}. If it cannot be sent at once, {tool} tries again later, when you use"
            f" it, for up to {days} days.",
        ]
    if not_asked:
        lines += [
            "",
            f"{_and(not_asked)} cannot be asked that way. To have your records deleted there"
            f" too, first run `{tool} telemetry status`, and copy the number after"
            f" `Install id:`. Then send it to {contact}, and ask for your data to be deleted."
            " Do this before you turn recording off, because the number is deleted then.",
        ]
    lines += [
        "",
        f"For any question, or to have your data deleted, write to {contact}."
        f" {_capital(who)} keeps the records for {kept}, then deletes them.",
    ]
    if forwarded or not_asked:
        lines[-1] += " The services named above keep them for as long as their own terms say."
    return lines


def _files(tool: str, max_events: int | None) -> list[str]:
    from .spool import DEFAULT_MAX_EVENTS

    limit = max_events or DEFAULT_MAX_EVENTS
    lines = [
        f"{tool} keeps two things on your computer for this. A settings file,"
        " `telemetry.conf`, remembers whether recording is on. A folder, `telemetry`, holds"
        " your random number and the records that wait to be sent. Only your own user"
        f" account can read them. At most {limit:,} records wait there; when there are more,"
        " the oldest are deleted.",
        "",
        "| System | Settings file | Folder |",
        "|---|---|---|",
    ]
    for system, config_file, state_dir in by_system(tool):
        lines.append(f"| {system} | `{config_file}` | `{state_dir}` |")
    lines += [
        "",
        "On Linux and macOS, `~` is your home folder. On Windows, the files are in your user"
        f" folder. `{tool} telemetry status` shows where they are on your computer.",
    ]
    return lines


def _destinations(
    endpoint: str | None, sinks: tuple[Provider, ...], warnings: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """Where the records go, in plain words; of those, the ones that are asked to delete
    (`cli_telemetry.deletion.leave`), and the ones that cannot be."""
    described: list[str] = []
    asked: list[str] = []
    not_asked: list[str] = []
    targets: list[tuple[str, dict[str, object], str]] = []
    if endpoint:
        targets.append((COLLECTOR_TARGET, {"endpoint": endpoint}, "collector"))
    targets += [(sink.target, dict(sink.options), sink.name) for sink in sinks]
    for target, options, name in targets:
        if target in _SERVICES:
            service, option, regions = _SERVICES[target]
            host = _host(options.get(option))
            region = regions.get(host)
            where = f"in {region}" if region else f"at `{host}`"
            described.append(f"{service}, an analytics service, on its servers {where}")
            not_asked.append(service)
            continue
        if target == COLLECTOR_TARGET:
            server, short = _server(options.get("endpoint"), "the author's own server")
        elif target == "cli_telemetry.sinks.webhook:WebhookSink":
            server, short = _server(options.get("url"), "a server the author chose")
        elif target == "cli_telemetry.sinks.otlp:OtlpSink":
            server, short = _server(options.get("endpoint"), "a monitoring server")
        else:
            server, short = f'a destination that the author set up, named "{name}"', name
            warnings.append(
                f"warning: the sink {name!r} ({target}) is not one cli-telemetry can describe:"
                " check what the page says of it, and say more in Privacy(forwarded_to=...)"
            )
        described.append(server)
        (not_asked if target in EVENTS_ONLY else asked).append(short)
    return described, asked, not_asked


def _server(url: object, who: str) -> tuple[str, str]:
    host = _host(url)
    if host.partition(":")[0] in _LOCAL_HOSTS or host.startswith("127."):
        return f"{who}, on this same computer (at `{host}`)", who
    return f"{who}, at `{host}`", who


def _host(url: object) -> str:
    parts = urlsplit(str(url or ""))
    return parts.netloc.rpartition("@")[2] or str(url)


def _days(days: int) -> str:
    if days % 365 == 0:
        years = days // 365
        return f"up to {years} year{'s' if years > 1 else ''}"
    if days >= 60:
        return f"up to {days} days (about {round(days / 30.44)} months)"
    return f"up to {days} day{'s' if days > 1 else ''}"


def _word(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower(text: str) -> str:
    text = text.strip().rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def _and(items: list[str]) -> str:
    return _join(items, "and")


def _either(items: list[str]) -> str:
    return _join(items, "or")


def _join(items: list[str], word: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"
