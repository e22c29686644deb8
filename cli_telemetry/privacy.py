"""A tool's privacy page, for the people who use it: ``click-telemetry schema --privacy``.

The page says first, in plain words, what the tool records, why, who receives it, how to
stop it, how to have it deleted and what to write to the author, with the tool's real name,
commands, variables, files and destinations; then, for those who want them, the technical
details (`cli_telemetry.describe.markdown`: the field table of `cli_telemetry.events`, the
recorded option values, the custom events), after a glossary of the words they use.
Everything comes from the tool's `Telemetry` object; what only the author knows (who
collects, how to reach them, why, for how long) comes from its `cli_telemetry.Privacy`, and
each detail left out is a visible ``<placeholder>`` and a warning.

The summary is written for someone who has never programmed: short sentences, everyday
words, no word of the trade that it does not explain, and no promise without its exceptions
("never records what you type" names the values it does record). What it says of deleting
is what the code does: ``disable`` deletes the id and the waiting records and leaves a
request (`cli_telemetry.deletion`) that the author's collector acts on at once; the two
variables stop a run before any file is read, so they delete nothing and send nothing.
``tests/test_privacy_page.py`` holds it to that (a list of jargon, a sentence length, a
Flesch reading-ease score, and the statements themselves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit

from ._paths import by_system
from ._settings import COLLECTOR_TARGET
from ._values import IDENTIFY_EVENT
from .deletion import EVENTS_ONLY, LIFETIME
from .describe import markdown, recorded_options
from .events import FIELDS

if TYPE_CHECKING:
    from .catalog import PropertySpec
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

Deletes = Literal["at once", "asked", "no"]
"""What a deletion request does at a destination: the author's collector deletes at once
(`cli_telemetry.collector.forget`); a webhook or a custom provider is handed the request and
its author decides; a provider's event API (`EVENTS_ONLY`) takes none."""


class Destination:
    """Where records go, for the page: as the list names it (``text``), as a sentence does
    (``short``), what a deletion request does there, whether it is an analytics service,
    and whether it is on the user's own computer."""

    __slots__ = ("deletes", "local", "service", "short", "text")

    def __init__(
        self, text: str, short: str, deletes: Deletes, *, service: bool = False, local: bool = False
    ) -> None:
        self.text: Final = text
        self.short: Final = short
        self.deletes: Final = deletes
        self.service: Final = service
        self.local: Final = local


def page(telemetry: Telemetry, target: str) -> tuple[str, list[str]]:
    """The privacy page of ``telemetry``'s tool, loaded from ``target`` (named at the end of
    the page, so that the author knows how it was made), and the warnings for its author:
    each detail left as a ``<placeholder>``, each destination it cannot name, and each on
    the user's own computer (a demo's address, most likely, not the one users send to)."""
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
    places = _destinations(config.endpoint, config.sinks, warnings)
    forwarded = privacy.forwarded_to
    sections = [
        f"# {tool}: what it records about its use, and how to stop it",
        "",
        f"This page is for the people who use {tool}. It says what {tool} records about how"
        " you use it, why, and who receives it. It also says how to stop it, and how to have"
        " the records deleted. Text shown `like this` is something you type, or a name just"
        f" as {tool} shows it.",
        "",
        "Recording how a program is used, and sending those records to the people who make"
        " it, is called *telemetry*. That is why the commands on this page start with"
        f" `{tool} telemetry`.",
        "",
        "## In short",
        "",
        *_short(tool, config.consent, places),
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
        *_who(tool, places, forwarded, config.upload_after_events, config.upload_after_seconds),
        "",
        "## The random number",
        "",
        f"Each record holds a random number. {tool} makes it the first time it records"
        " something, and keeps it on your computer. It is not made from your name, nor from"
        " anything about your computer. Other programs that record their use this way each"
        " make their own, different number. The same number comes with all your records. So"
        " whoever receives them can tell that two records came from the same copy of"
        f" {tool}, but not whose copy it is.",
        "",
        "Data like this is called *pseudonymous*. It does not name you, but it is not"
        " anonymous either, because your records are linked to each other by that number."
        f" When you turn recording off with `{tool} telemetry disable`, {tool} deletes the"
        " number. If you turn it on again, it makes a new one, with no link to the old one.",
        "",
        "## How to stop it",
        "",
        *_stop(tool, prefix, places),
        "",
        "## How to have it deleted",
        "",
        *_delete(tool, prefix, who, kept, places, bool(forwarded)),
        "",
        "## Writing to the author",
        "",
        *_writing(tool, contact, places),
        "",
        "## Where its files are",
        "",
        *_files(tool, config.max_events, places),
        "",
        markdown(
            telemetry, level=2, title=DETAILS_HEADING[3:], preface=_glossary(telemetry)
        ).rstrip(),
        "",
        "---",
        "",
        f"This page was made by `click-telemetry schema --privacy {target}`, from {tool}'s"
        " own settings.",
    ]
    return "\n".join(sections) + "\n", warnings


def _short(tool: str, consent: str, places: list[Destination]) -> list[str]:
    remote = _unique([place.short for place in places if not place.local])
    if not places:
        where = "It sends them nowhere: they stay on your computer."
    elif not remote:
        where = "It sends them to a program on your own computer: they do not leave it."
    else:
        where = f"It sends them over the internet to {_and(remote)}."
        if any("server" in place.text for place in places if not place.local):
            where += " A server is a computer that receives such records."
    if consent == "prompt":
        when = "It is off unless you say yes when it asks you."
    else:
        when = (
            "It is on unless you turn it off. It does not ask first: the first time, it"
            " shows a message, and records nothing."
        )
    return [
        f"- {tool} records which of its commands you use, whether they work, and what kind of"
        f" computer runs them. {where}",
        f"- {when}",
        f"- To see whether it is on right now, type `{tool} telemetry status`.",
        f"- To stop it, and have your records deleted, type `{tool} telemetry disable`.",
    ]


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
        *_items(phrases),
        "",
    ]
    exceptions: list[str] = []
    options, _ = recorded_options(telemetry)
    if options:
        exceptions.append("the option values listed above")
        lines += [
            "For these options, it also records the value you chose, but only when it is one"
            " of the values listed here:",
            "",
        ]
        for option in options.values():
            values = [f"`{_word(value)}`" for value in option.values]
            lines.append(f"- {' or '.join(f'`{n}`' for n in option.names)}: {_either(values)}.")
        lines.append("")
    events = [spec for spec in telemetry.catalog if spec.name != IDENTIFY_EVENT]
    if events:
        lines += [
            "Some commands also make an extra record. Each kind has a name, shown below. The"
            " author describes each one in their own words, and it holds only the details"
            " listed with it.",
            "",
        ]
        for spec in events:
            lines += [f"`{spec.name}`: {_sentence(spec.description)}", ""]
            if spec.properties:
                lines += ["It holds:", "", *_items(_properties(spec.properties)), ""]
            else:
                lines += ["It holds nothing more.", ""]
        if any(spec.properties for spec in events):
            exceptions.append("the details of the extra records listed above")
    for spec in telemetry.catalog:
        if spec.name == IDENTIFY_EVENT:
            lines += [
                f"{tool} also records a few facts about your copy of {tool}, which the author"
                " chose. It records them once, and again only when one of them changes. The"
                f" author describes them so: {_sentence(spec.description)} They are:",
                "",
                *_items(_properties(spec.properties)),
                "",
                f"These facts are about your copy of {tool}. They are never your name, nor"
                " text that you wrote. The technical details call this record `identify`,"
                ' and the facts "traits".',
                "",
            ]
            exceptions.append("the facts about your copy listed above")
    lines += [
        f"Asking {tool} for help (`{tool} --help`) counts as a use, and is recorded too."
        f" Using the commands this page names (`{tool} telemetry ...`) is never recorded.",
        "",
    ]
    if exceptions:
        numbers = any(
            prop.kind in ("integer", "number")
            for spec in telemetry.catalog
            for prop in spec.properties
        )
        lines.append(
            f"{tool} never records what you type after a command or an option, except"
            f" {_and(exceptions)}. So it never records file names, web addresses, names,"
            " passwords, or any other text that is not in the lists above."
            + (" A number in them may be one that you typed." if numbers else "")
        )
    else:
        lines.append(
            f"{tool} never records what you type after a command or an option: no file"
            " names, web addresses, names, passwords or other text."
        )
    lines[-1] += (
        " It never records your user name, your computer's name, your internet address"
        " (IP address), or error messages."
    )
    return lines


def _properties(properties: tuple[PropertySpec, ...]) -> list[str]:
    """A custom event's (or identify's) properties in plain words: the author's description
    (the property's name where there is none), and the values it may hold."""
    return [f"{_code(_lower(p.description)) or f'`{p.name}`'}: {_kind(p)}" for p in properties]


def _kind(prop: PropertySpec) -> str:
    if prop.kind == "choice":
        text = _either([f"`{_word(choice)}`" for choice in prop.choices])
    else:
        text = {"boolean": "yes or no", "integer": "a whole number"}.get(prop.kind, "a number")
    if prop.nullable:
        text += ", or nothing"
    if not prop.required:
        text += " (not always there)"
    return text


def _when(tool: str, consent: str) -> list[str]:
    terminal = "in a terminal window (the window where you type commands)"
    if consent == "prompt":
        return [
            f"{tool} asks you once, {terminal}, whether it may record how you use it. It"
            " records nothing unless you answer yes. If nobody is there to answer, because"
            f" another program started {tool}, it does not ask, and records nothing. If the"
            " author changes what it records, it asks again, but never after you said no.",
        ]
    return [
        f"The first time you use {tool} {terminal}, it shows a short message about this. It"
        " records nothing for that use. It does not ask whether you agree: from then on, it"
        " records each use, until you turn it off.",
        "",
        "To say no, turn it off as shown below, before you use it again. Nothing will have"
        f" been recorded. You can even turn it off before you use {tool} at all. If {tool}"
        " is only ever started by other programs, where nobody sees the message, it records"
        " nothing. If the author changes what it records, the message is shown again.",
    ]


def _age(seconds: float) -> str:
    """``3600`` → ``"an hour"``, ``5400`` → ``"90 minutes"``, in whole units."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return ("an " if unit == "hour" else "a ") + unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


def _who(
    tool: str,
    places: list[Destination],
    forwarded_to: tuple[str, ...],
    after_events: int,
    after_seconds: float,
) -> list[str]:
    if not places:
        return [
            f"Nobody: {tool} is set up to send the records nowhere. They stay on your computer."
        ]
    when = "After a command has finished"
    if after_events > 1 and after_seconds > 0:
        when = (
            f"{tool} keeps its records on your computer until {after_events} of them wait, or"
            f" the oldest is {_age(after_seconds)} old. Then, after a command has finished"
        )
    lines = [
        f"{when}, {tool} sends its records in the background, so it does not slow you down."
        " They are sent to:",
        "",
        *_items([place.text for place in places]),
        "",
    ]
    if any(place.local for place in places):
        lines += [
            '`127.0.0.1` and `localhost` are addresses that always mean "this computer". So'
            " records sent there do not leave your computer. The author gets nothing from"
            " there, unless that program passes the records on.",
            "",
        ]
    if forwarded_to:
        lines += ["From there, they are passed on to:", "", *_items(list(forwarded_to)), ""]
    lines.append(
        "They go nowhere else. Until they are sent, they wait in a file on your computer:"
        f" `{tool} telemetry status` says how many wait, and when they will be sent."
    )
    if all(place.local for place in places):
        return lines
    lines += [
        "",
        "Like any website you visit, a server that receives the records sees your internet"
        " address (IP address). The records themselves never hold it.",
    ]
    if any(place.deletes == "at once" and not place.local for place in places):
        lines[-1] += (
            " The author's server runs cli-telemetry's own server program, which does not"
            " keep that address, not even in a log."
        )
    if any(place.service for place in places):
        lines[-1] += " The analytics services are told not to use it to find where you are."
    return lines


def _stop(tool: str, prefix: str, places: list[Destination]) -> list[str]:
    asked = any(place.deletes != "no" for place in places)
    also = ", and asks for your records to be deleted (see below)" if asked else ""
    return [
        "Any one of these stops it:",
        "",
        f"- Type `{tool} telemetry disable` in your terminal, and press Enter. This also"
        " deletes the records that wait on your computer, and your random number (see"
        f" above){also}.",
        "- Set `DO_NOT_TRACK=1`, as shown below. Many tools obey this setting, so it stops"
        " them all.",
        f"- Set `{prefix}_TELEMETRY_DISABLED=1`, the same way. This stops {tool} only.",
        "",
        "These two are settings that your computer passes to each program it starts. They"
        " only stop the recording. They delete nothing: the records that wait stay on your"
        " computer, unsent, and so does your random number. Nor do they ask for anything to"
        " be deleted. If you remove the setting later, recording goes on with the same"
        f" number, and the waiting records are sent. To delete, use `{tool} telemetry"
        " disable`. It works with these settings on, too.",
        "",
        "To set `DO_NOT_TRACK=1` for good on a Mac, open the Terminal app, type this line,"
        " then press Enter: `echo 'export DO_NOT_TRACK=1' >> ~/.zshrc`. On Linux, type"
        " `echo 'export DO_NOT_TRACK=1' >> ~/.bashrc` instead. Each adds one line to a file"
        " that your terminal reads when it opens. So it works in each terminal window that"
        " you open after that. On Windows, type `setx DO_NOT_TRACK 1` in a terminal (Command"
        " Prompt or PowerShell), then open a new one. For"
        f" `{prefix}_TELEMETRY_DISABLED=1`, type its name in place of `DO_NOT_TRACK`.",
        "",
        f"To check, run `{tool} telemetry status`. Its first line says whether recording is"
        f" on or off, and why. To turn it back on, run `{tool} telemetry enable`. To see what"
        f" would be sent, without sending anything, set `{prefix}_TELEMETRY_DEBUG=1`. Each"
        " record is then shown in your terminal instead.",
    ]


def _delete(
    tool: str, prefix: str, who: str, kept: str, places: list[Destination], forwarded: bool
) -> list[str]:
    days = round(LIFETIME / 86400)
    asked = _unique([place.short for place in places if place.deletes != "no"])
    not_asked = _unique([place.short for place in places if place.deletes == "no"])
    others = _unique([place.short for place in places if place.deletes == "asked"])
    at_once = next((place.short for place in places if place.deletes == "at once"), None)
    lines = [
        f"When you run `{tool} telemetry disable`, {tool} at once deletes the records that"
        " wait on your computer, and your random number.",
    ]
    if asked:
        lines += [
            "",
            f"It also sends one last message to {_and(asked)}. The message holds your random"
            f" number, and nothing about how you used {tool}. It asks for every record with"
            " that number to be deleted.",
        ]
        if at_once:
            lines[-1] += f" {_capital(at_once)} deletes them as soon as the message arrives."
            if forwarded:
                lines[-1] += (
                    " It passes the request on to the services named above, where the author"
                    " has set that up. Those delete them on their own schedule."
                )
        if others:
            lines[-1] += f" What {_and(others)} then does is up to the author."
        lines += [
            "",
            f"If the message cannot be sent at once (say, you are offline), {tool} tries"
            f" again each of the next times you run it, for up to {days} days. Those runs"
            f" record nothing. While `DO_NOT_TRACK` or `{prefix}_TELEMETRY_DISABLED` is set,"
            f" only `{tool} telemetry status` tries again.",
            "",
            f"To know whether the message was sent, run `{tool} telemetry status`. While the"
            " message waits, it shows a line that starts with `Deletion:`. Once that line is"
            f" gone, the message has arrived, or the {days} days are over.",
        ]
    if not_asked:
        lines += [
            "",
            f"{_and(not_asked)} cannot be asked that way. To have your records deleted there"
            f" too, first run `{tool} telemetry status`, and copy the number after"
            " `Install id:`. Then send it to the author (see below), and ask for your data to"
            " be deleted. Do this before you turn recording off, because the number is"
            " deleted then.",
        ]
    lines += ["", f"{_capital(who)} keeps the records for {kept}, then deletes them."]
    if asked:
        lines[-1] += " A deletion asked for as above does not wait for that time to end."
    if forwarded or not_asked:
        lines[-1] += " The services named above keep them for as long as their own terms say."
    return lines


def _writing(tool: str, contact: str, places: list[Destination]) -> list[str]:
    at_once = next((place.short for place in places if place.deletes == "at once"), None)
    not_asked = _unique([place.short for place in places if place.deletes == "no"])
    if at_once and not not_asked:
        after = (
            "You do not need to write, though: the message that `disable` sent deletes them"
            f" from {at_once}."
        )
    elif at_once:
        after = (
            f"The message that `disable` sent deletes them from {at_once}. At"
            f" {_and(not_asked)}, they stay until the time above is over."
        )
    else:
        after = (
            "So the author cannot delete them for you. They are deleted when the time above"
            " is over."
        )
    return [
        f"For any question, write to {contact}. The records do not hold your name, so your"
        " random number is the only way to find yours.",
        "",
        f"- If recording is on, run `{tool} telemetry status` first. Copy the number after"
        " `Install id:` into your message.",
        f"- If you already ran `{tool} telemetry disable`, that number is gone, and nobody"
        f" can tell which records are yours. {after} If you wrote the number down before,"
        " send it.",
    ]


def _files(tool: str, max_events: int | None, places: list[Destination]) -> list[str]:
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
        "",
        f"Uninstalling {tool} does not delete them. Once {tool} is uninstalled, you can"
        " safely delete that file and that folder yourself.",
    ]
    if any(place.deletes != "no" for place in places):
        lines[-1] += (
            f" If you want your records deleted, run `{tool} telemetry disable` before you"
            f" uninstall. Then wait until `{tool} telemetry status` no longer shows a"
            " `Deletion:` line: deleting the folder before that also deletes the message."
        )
    return lines


def _glossary(telemetry: Telemetry) -> list[str]:
    """The words of the field table, said plainly, before it: the summary needs none of
    them, the details cannot do without them. ``tests/test_privacy_page.py`` checks that
    each term is still used below."""
    tool = telemetry.tool
    if any(spec.name == IDENTIFY_EVENT for spec in telemetry.catalog):
        identify = f"the record of the facts about your copy of {tool}, described above."
    else:
        identify = (
            "a record of a few facts about a copy of a tool, chosen by its author."
            f" {tool} makes none."
        )
    terms = [
        ("**record**, **event**, **field**", "a record is what this page describes above."
         " The table calls it an event, and each piece of it a field."),
        ("**custom event**", "one of the extra records described above."),
        ("**property**, **properties**", "the details that an extra record holds, listed"
         " above."),
        ("**`deletion_request`**", "the last message that `disable` sends, described above."),
        ("**`identify`**, **traits**", identify),
        ("**`acme`**", f"the name the table uses for any tool. Here, read it as {tool}."),
        ("**id**", "a random code, such as your random number (`install_id`)."),
        ("**UTC**", "world time, the time in London in winter."),
        ("**subcommand**", "a command inside another one, such as `start` in"
         " `acme deploy start`."),
        ("**alias**", "a short name that you made up for a command."),
        ("**plugin**", f"an add-on that {tool} finds on your computer when it runs."),
        ("**environment variable**", "a setting that your computer passes to each program it"
         " starts, such as `DO_NOT_TRACK`."),
        ("**exit status**", "a number that a command gives back when it ends: `0` when it"
         " worked."),
        ("**milliseconds**", "thousandths of a second."),
        ("**Ctrl-C**", "the keys that stop a command while it runs."),
        ("**`null`**", "nothing, no value."),
        ("**OS**, **kernel**", "the operating system, and its core part."),
        ("**architecture**", "the kind of processor."),
        ("**CI**", "a service that tests programs by itself, such as GitHub Actions."),
        ("**stdin**, **stderr**", "where a program reads what you type, and where it shows"
         " its messages. When both are a terminal window, a person is there."),
        ("**script**", "a file of commands that runs by itself."),
    ]  # fmt: skip
    return [
        "This part is for those who want the technical details. You do not need it to use"
        f" {tool}, nor to stop the recording. It uses these words:",
        "",
        *(f"- {term}: {meaning}" for term, meaning in terms),
        "",
    ]


def _destinations(
    endpoint: str | None, sinks: tuple[Provider, ...], warnings: list[str]
) -> list[Destination]:
    """Where the records go, in plain words, and what a deletion request
    (`cli_telemetry.deletion.leave`) does at each."""
    places: list[Destination] = []
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
            text = f"{service}, an analytics service, on its servers {where}"
            places.append(Destination(text, service, "no", service=True))
            continue
        deletes: Deletes = "no" if target in EVENTS_ONLY else "asked"
        if target == COLLECTOR_TARGET:
            url, who, deletes = options.get("endpoint"), "the author's own server", "at once"
        elif target == "cli_telemetry.sinks.webhook:WebhookSink":
            url, who = options.get("url"), "a server the author chose"
        elif target == "cli_telemetry.sinks.otlp:OtlpSink":
            url, who = options.get("endpoint"), "a monitoring server"
        else:
            text = f'a destination that the author set up, named "{name}"'
            places.append(Destination(text, name, deletes))
            warnings.append(
                f"warning: the sink {name!r} ({target}) is not one cli-telemetry can describe:"
                " check what the page says of it, and say more in Privacy(forwarded_to=...)"
            )
            continue
        host = _host(url)
        name_only = urlsplit(str(url or "")).hostname or ""
        if name_only in _LOCAL_HOSTS or name_only.startswith("127."):
            text = f"a program on this same computer, set up by the author (at `{host}`)"
            places.append(Destination(text, "a program on your own computer", deletes, local=True))
            warnings.append(
                f"warning: {name} sends to {host}, on the user's own computer, so the page says"
                " that the records do not leave it: generate the page with the address your"
                " users' copies send to"
            )
        else:
            places.append(Destination(f"{who}, at `{host}`", who, deletes))
    return places


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


def _items(phrases: list[str]) -> list[str]:
    """A Markdown list of ``phrases``, each ending with ``;`` and the last with ``.``."""
    return [f"- {phrase};" for phrase in phrases[:-1]] + [f"- {phrases[-1]}."]


def _sentence(text: str) -> str:
    """The author's ``text`` as a sentence (`_code`)."""
    text = _capital(_code(text.strip()))
    return text if text.endswith((".", "!", "?")) else text + "."


def _code(text: str) -> str:
    """The author's ``text``, each option it names shown as it is typed: ``--dry-run`` is
    not a word a reader can look up."""
    import re

    return re.sub(r"(?<![`\w-])(--[a-z][a-z0-9-]*)", r"`\1`", text)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


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
