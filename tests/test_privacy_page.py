"""`click-telemetry schema --privacy`: the privacy page a tool ships to its users.

The example tool's page (examples/cli_app/PRIVACY.md) is what the command prints, and the
plain-language summary of every page the generator can write, and of the library's own
PRIVACY.md, is held to rules a reader without a programmer's vocabulary needs:

- no word of the trade (`JARGON`) outside a code span: a command or a path must be shown
  as it is typed, the prose around it must not need a glossary; the few the summary needs
  (`EXPLAINED`) come with their explanation;
- no ``<placeholder>`` left once the author declared every detail;
- no sentence longer than `LONGEST` words, and `AVERAGE` at most on average;
- a Flesch reading-ease score of at least `FLESCH` (`flesch`).

Why 70: on Flesch's scale (Flesch, *A new readability yardstick*, 1948, graded as most tools
grade it), 60 to 70 is "plain English" and 70 to 80 "fairly easy", the level of a popular
magazine. A privacy summary is read once, by anyone who uses the tool, so it aims at the
easier band; the generator's pages score about 78 to 82, which leaves room for the author's
own words that flow into them (the purpose, the events' descriptions). For comparison, the
US states that set a floor for consumer documents set it lower: 45 for Florida's insurance
policies, 50 for Pennsylvania's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal, NotRequired, TypedDict

import pytest
from conftest import Tool

from cli_telemetry import Privacy, Telemetry
from cli_telemetry.errors import ConfigurationError
from cli_telemetry.events import privacy_table
from cli_telemetry.privacy import DETAILS_HEADING, page
from cli_telemetry.providers import Collector, PostHog, Provider, Segment, Webhook

ROOT = Path(__file__).resolve().parent.parent
CLI = os.path.join(os.path.dirname(sys.executable), "click-telemetry")
EXAMPLE_PAGE = ROOT / "examples" / "cli_app" / "PRIVACY.md"
ENDPOINT = "https://telemetry.example-widgets.example/v1/events"
"""The address the example's page is made for: a real tool's users send over the internet,
not to the loopback collector of the example's demo (its default), which would make the
page say that the records never leave the computer."""
REGENERATE = (
    f"regenerate it: cd examples/cli_app && CLI_APP_ENDPOINT={ENDPOINT}"
    " click-telemetry schema --privacy cli_app.cli:telemetry > PRIVACY.md"
)

_JARGON = """
    hmac xdg stderr stdin stdout uuid uuids 0700 0600 json spool spooled uploader collector
    endpoint sink sinks schema config env utc api sdk http https url hash hashed pid
    platformdirs kernel architecture cli subcommand flag flags boolean null string payload
    daemon process ci os opt-in opt-out metadata id ids script scripts alias plugin
    plugins variable variables environment exit property properties
    custom event events identify trait dry-run export setx bashrc zshrc
"""
JARGON = frozenset(_JARGON.split())
"""Words a reader who never programmed would stop at (the second half: those a reader of
the example's page stopped at, or that the details use)."""
EXPLAINED = {
    "telemetry": "is called *telemetry*",
    "pseudonymous": "Data like this is called *pseudonymous*",
    "server": "A server is a computer",
    "servers": "A server is a computer",
    "traits": 'facts "traits"',
}
"""Words of the trade the summary needs, each allowed only with the words that explain it."""
LONGEST = 30
AVERAGE = 17.0
FLESCH = 70.0

DECLARED = Privacy(
    collected_by="Acme Ltd",
    contact="privacy@acme.example",
    purpose="to learn which commands people use, so that they can improve them",
    retention_days=365,
)


def generate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if "ENDPOINT" not in k}
    env["CLI_APP_ENDPOINT"] = ENDPOINT
    return subprocess.run(
        [CLI, "schema", "--privacy", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )


# -- reading ease -----------------------------------------------------------------------


def summary(markdown: str) -> str:
    """The plain-language part of a privacy page: before its details, without the title,
    comments, tables or headings."""
    head = markdown.split(DETAILS_HEADING, 1)[0]
    head = re.sub(r"<!--.*?-->", "", head, flags=re.S)
    return "\n".join(
        line
        for line in head.splitlines()
        if not line.startswith(("#", "|")) and "Generated" not in line
    )


def prose(text: str) -> str:
    """``text`` as it is read: a code span, an address or a link is one word ("code"); the
    emphasis marks go."""
    text = re.sub(r"`[^`]*`", "code", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\S+@\S+\.\w+|\w+://\S+", "code", text)
    return text.replace("*", "").replace("_", " ")


def sentences(text: str) -> list[list[str]]:
    """The sentences of ``text``, each a list of words: a list item is read as a sentence
    of its own, whatever ends it; otherwise a sentence ends with ., ! or ?."""
    found: list[list[str]] = []
    for block in re.split(r"\n\s*\n|\n(?=- )", text):
        block = block.strip().removeprefix("- ")
        for sentence in re.split(r"(?<=[.!?])\s+", block):
            words = re.findall(r"[A-Za-z0-9][A-Za-z0-9'\u2019-]*", sentence)
            if words:
                found.append(words)
    return found


def syllables(word: str) -> int:
    """English syllables, by groups of vowels (a silent final e is not one): the usual
    estimate, within one of a dictionary's count for most words."""
    word = word.lower().strip("'\u2019")
    if word.isdigit():
        return len(word)  # a digit is read as a word: "400" is three
    count = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def flesch(text: str) -> float:
    """Flesch reading ease: 206.835 - 1.015 * words per sentence - 84.6 * syllables per
    word. 100 is a child's reader, 0 a law journal."""
    found = sentences(text)
    words = [word for sentence in found for word in sentence]
    return (
        206.835
        - 1.015 * len(words) / len(found)
        - 84.6 * sum(syllables(w) for w in words) / len(words)
    )


def problems(markdown: str, *, declared: bool = True) -> list[str]:
    text = summary(markdown)
    read = prose(text)
    found: list[str] = []
    words = {word.lower() for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*", read)}
    if jargon := sorted(words & JARGON):
        found.append(f"jargon outside code spans: {jargon}")
    flowing = " ".join(text.split())
    if unexplained := sorted(w for w in words & set(EXPLAINED) if EXPLAINED[w] not in flowing):
        found.append(f"jargon not explained: {unexplained}")
    if declared and (left := re.findall(r"<[^>\n]+>", text)):
        found.append(f"placeholders left: {left}")
    lengths = [len(sentence) for sentence in sentences(read)]
    long = [" ".join(s) for s in sentences(read) if len(s) > LONGEST]
    if long:
        found.append(f"sentences over {LONGEST} words: {long}")
    if sum(lengths) / len(lengths) > AVERAGE:
        found.append(f"{sum(lengths) / len(lengths):.1f} words a sentence on average")
    if (score := flesch(read)) < FLESCH:
        found.append(f"Flesch reading ease {score:.1f} < {FLESCH}")
    return found


def test_the_measures_tell_plain_words_from_dense_ones() -> None:
    """The measures themselves: a plain text passes, and a text written as the library's
    old PRIVACY.md was fails, on each rule."""
    plain = (
        "Each time you use acme, it makes a short record. It never records what you type."
        " You can turn it off at any time."
    )
    assert flesch(plain) > 80
    assert syllables("record") == 2 and syllables("time") == 1 and syllables("anonymous") == 4
    dense = (
        "The install_id, a random UUID kept in the state directory (XDG_STATE_HOME, mode"
        " 0700), is deleted by the telemetry disable subcommand, which additionally"
        " enqueues a deletion_request, transmitted asynchronously irrespective of"
        " DO_NOT_TRACK, to every configured sink implementing the forgetting interface."
    )
    found = problems(f"# t\n\n{dense} Ask <who>.\n")
    for kind in ("jargon", "placeholders left", "sentences over", "on average", "Flesch"):
        assert any(kind in problem for problem in found), (kind, found)


# -- the example tool's page --------------------------------------------------------------


def test_the_example_ships_the_page_the_command_prints(tmp_path: Path) -> None:
    result = generate("cli_app.cli:telemetry", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert EXAMPLE_PAGE.read_text() == result.stdout, REGENERATE


def test_the_example_page_reads_plainly_and_says_what_the_brief_asks() -> None:
    text = EXAMPLE_PAGE.read_text()
    assert problems(text) == []
    plain = text.split(DETAILS_HEADING, 1)[0]
    for needed in (
        "`cli-app telemetry disable`",
        "`DO_NOT_TRACK=1`",
        "`CLI_APP_TELEMETRY_DISABLED=1`",
        "`CLI_APP_TELEMETRY_DEBUG=1`",
        "`cli-app --help`",
        "pseudonymous",
        "The cli-app team at Example Widgets Ltd",
        "privacy@cli-app.example",
        "up to 400 days (about 13 months)",
        "`~/.config/cli-app/telemetry.conf`",
        "`~/Library/Application Support/cli-app/telemetry/`",
        "`AppData\\Local\\cli-app\\telemetry.conf`",
        "`deploy.finished`",
        "- how many copies of the widget it started (the number given with `--replicas`):"
        " a whole number;",
        "- `--env`: `dev`, `staging` or `prod`.",
    ):
        assert needed in plain, needed
    # ...and the field table is still the schema's own (cli_telemetry.events).
    assert privacy_table() in text.split(DETAILS_HEADING, 1)[1]


def test_the_example_page_answers_what_a_reader_who_never_programmed_asked() -> None:
    """What a reader without a programmer's vocabulary could not find, or misread, in the
    page's first version: each is now said, where they looked for it."""
    text = EXAMPLE_PAGE.read_text()
    plain = summary(text)
    for needed in (
        # what "telemetry" is, once, in plain words
        "Recording how a program is used, and sending those records to the people who make"
        " it, is called *telemetry*.",
        # does anything leave my computer, is it on now, is it on unless I act
        "It sends them over the internet to the author's own server.",
        "It is on unless you turn it off. It does not ask first",
        "To see whether it is on right now, type `cli-app telemetry status`.",
        # "never what you type", with its exceptions said where it is promised
        "never records what you type after a command or an option, except the option values"
        " listed above and the details of the extra records listed above.",
        "A number in them may be one that you typed.",
        "but not what you typed after them;",
        # the random number is described above the commands that delete it
        "and your random number (see above)",
        # the first message: no question, and how to say no
        "It does not ask whether you agree",
        "To say no, turn it off as shown below, before you use it again.",
        # the variables stop, but do not delete, unlike disable
        "They delete nothing: the records that wait stay on your computer, unsent, and so"
        " does your random number. Nor do they ask for anything to be deleted.",
        "`echo 'export DO_NOT_TRACK=1' >> ~/.zshrc`",
        # deleting, not only asking; overriding the retention; how to know it happened
        "The author's own server deletes them as soon as the message arrives.",
        "A deletion asked for as above does not wait for that time to end.",
        "tries again each of the next times you run it, for up to 30 days. Those runs record"
        " nothing.",
        "it shows a line that starts with `Deletion:`",
        # what to write, and what cannot be done once the number is gone
        "Copy the number after `Install id:` into your message.",
        "that number is gone, and nobody can tell which records are yours.",
        # the internet address, and what the author's collector does with it
        "The records themselves never hold it. The author's server runs cli-telemetry's own"
        " server program, which does not keep that address, not even in a log.",
        # uninstalling
        "Uninstalling cli-app does not delete them.",
        "you can safely delete that file and that folder yourself.",
    ):
        assert needed in plain, needed
    assert "on this same computer" not in text and "127.0.0.1" not in text
    # No HTML comment for a reader of the plain text to stumble on: how the page was made is
    # its last sentence.
    assert "<!--" not in text
    assert text.endswith(
        "This page was made by `click-telemetry schema --privacy cli_app.cli:telemetry`,"
        " from cli-app's own settings.\n"
    )
    details = text.split(DETAILS_HEADING, 1)[1]
    assert details.lstrip().startswith("This part is for those who want the technical details.")
    assert "- **`identify`**, **traits**: a record of a few facts about a copy of a tool" in details
    assert "cli-app makes none." in details


def test_the_glossary_explains_words_the_details_use() -> None:
    """Each term the glossary explains is used in the details after it (a term that the
    field table stopped using goes), and each word of `JARGON` the details use outside code,
    but for a few everyday ones, is explained."""
    details = EXAMPLE_PAGE.read_text().split(DETAILS_HEADING, 1)[1]
    glossary, table = details.split("\n\nEach time a command of", 1)
    terms = re.findall(r"\*\*`?([^*`]+)`?\*\*", glossary)
    assert len(terms) > 15
    for term in terms:
        assert term.lower() in table.lower(), term
    ours = table.split("### Custom events", 1)[0]  # then the author's own words
    used = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]*", prose(ours))} & JARGON
    explained = {w.lower() + s for term in terms for w in term.split() for s in ("", "s")}
    everyday = {"string"}  # "its full build string", beside an example of one
    assert used - explained - everyday == set(), used - explained


# -- every page the generator writes ------------------------------------------------------


def pages() -> dict[str, Telemetry]:
    posthog_eu = PostHog("phc_x", host="https://eu.i.posthog.com")
    return {
        "notice, collector": Telemetry(
            "acme", version="1", endpoint="https://t.acme.example/v1/events", privacy=DECLARED
        ),
        "prompt, services only": Telemetry(
            "acme",
            version="1",
            consent="prompt",
            sinks=[posthog_eu, Segment("w")],
            privacy=DECLARED,
        ),
        "everything": Telemetry(
            "acme",
            version="1",
            endpoint="https://t.acme.example/v1/events",
            sinks=[posthog_eu, Webhook("https://hooks.acme.example/in")],
            privacy=Privacy(
                collected_by="the acme team",
                contact="https://acme.example/privacy",
                purpose="to see which features matter",
                retention_days=90,
                forwarded_to=["Mixpanel, in the European Union"],
            ),
        ),
        "nowhere": Telemetry("acme", version="1", privacy=DECLARED),
        "identify": identifying(),
    }


class Traits(TypedDict):
    """The plan this copy is on."""

    plan: Annotated[Literal["free", "pro"], "Which plan your copy of acme uses"]
    seats: NotRequired[Annotated[int, "How many people share it"]]


def identifying() -> Telemetry:
    """A tool that declares ``identify`` traits, and no other custom event."""
    telemetry = Telemetry(
        "acme", version="1", endpoint="https://t.acme.example/v1/events", privacy=DECLARED
    )
    telemetry.event("identify", Traits)
    return telemetry


@pytest.mark.parametrize("name", list(pages()))
def test_every_page_the_generator_writes_reads_plainly(name: str) -> None:
    text, warnings = page(pages()[name], "acme_tool:telemetry")
    assert warnings == []
    assert problems(text) == []
    assert privacy_table() in text


def test_destinations_are_named_and_deletion_is_told_as_it_is() -> None:
    text, _ = page(pages()["everything"], "acme_tool:telemetry")
    plain = summary(text)
    assert "- the author's own server, at `t.acme.example`;" in plain
    assert "- PostHog, an analytics service, on its servers in the European Union;" in plain
    assert "- a server the author chose, at `hooks.acme.example`." in plain
    assert "- Mixpanel, in the European Union." in plain  # forwarded_to, as declared
    assert "one last message to the author's own server and a server the author chose" in plain
    assert "PostHog cannot be asked that way" in plain and "`Install id:`" in plain
    assert "The acme team collects the records (" in plain  # capitalised where it starts one
    assert "for up to 90 days (about 3 months)" in plain

    services, _ = page(pages()["prompt, services only"], "acme_tool:telemetry")
    plain = summary(services)
    assert "one last message" not in plain  # a provider's event API takes no deletion
    assert "PostHog and Segment cannot be asked that way" in plain
    assert "Segment, an analytics service, on its servers in the United States" in plain
    assert "asks you once" in plain and "for up to 1 year" in plain

    nowhere, _ = page(pages()["nowhere"], "acme_tool:telemetry")
    assert "They stay on your computer." in summary(nowhere)


def test_a_local_server_and_a_custom_provider_are_said_so(tmp_path: Path) -> None:
    telemetry = Telemetry(
        "acme",
        version="1",
        sinks=[Collector("http://127.0.0.1:8787/v1/events"), Provider("mypkg.sinks:Mine")],
        privacy=DECLARED,
    )
    text, warnings = page(telemetry, "acme_tool:telemetry")
    assert "- a program on this same computer, set up by the author (at `127.0.0.1:8787`);" in text
    assert 'a destination that the author set up, named "mine"' in text
    assert warnings == [
        "warning: collector sends to 127.0.0.1:8787, on the user's own computer, so the page"
        " says that the records do not leave it: generate the page with the address your"
        " users' copies send to",
        "warning: the sink 'mine' (mypkg.sinks:Mine) is not one cli-telemetry can describe:"
        " check what the page says of it, and say more in Privacy(forwarded_to=...)",
    ]


def test_a_page_whose_only_destination_is_this_computer_says_so_plainly() -> None:
    """A loopback endpoint (a demo's) is not "the author's own server": the page says that
    the records stay on the computer, and does not speak of servers or internet addresses."""
    telemetry = Telemetry(
        "acme", version="1", endpoint="http://localhost:8787/v1/events", privacy=DECLARED
    )
    text, warnings = page(telemetry, "acme_tool:telemetry")
    plain = summary(text)
    assert "It sends them to a program on your own computer: they do not leave it." in plain
    assert 'addresses that always mean "this computer"' in plain
    assert "records sent there do not leave your computer" in plain
    assert "server" not in plain and "sees your internet address" not in plain
    assert "over the internet" not in plain
    assert len(warnings) == 1 and "localhost:8787, on the user's own computer" in warnings[0]
    assert problems(text) == []


def test_a_tool_that_declares_identify_explains_its_traits_in_plain_words() -> None:
    text, warnings = page(identifying(), "acme_tool:telemetry")
    assert warnings == [] and problems(text) == []
    plain = summary(text)
    for needed in (
        "acme also records a few facts about your copy of acme, which the author chose. It"
        " records them once, and again only when one of them changes. The author describes"
        " them so: The plan this copy is on. They are:",
        "- which plan your copy of acme uses: `free` or `pro`;",
        "- how many people share it: a whole number (not always there).",
        "They are never your name, nor text that you wrote. The technical details call this"
        ' record `identify`, and the facts "traits".',
        "except the facts about your copy listed above.",
        "A number in them may be one that you typed.",
    ):
        assert needed in plain, needed
    assert "extra record" not in plain  # identify is not a custom event of its own
    details = text.split(DETAILS_HEADING, 1)[1]
    assert "- **`identify`**, **traits**: the record of the facts about your copy" in details


def test_a_tool_with_no_recorded_values_promises_without_exceptions() -> None:
    text, _ = page(pages()["nowhere"], "acme_tool:telemetry")
    assert (
        "acme never records what you type after a command or an option: no file names, web"
        " addresses, names, passwords or other text."
    ) in summary(text)


def test_what_the_page_says_of_the_settings_and_of_status_is_what_they_do(tool: Tool) -> None:
    """The variables stop a run before any file is read: the random number and the waiting
    records stay. ``disable`` deletes both and leaves a request, which ``status`` shows on a
    line that starts with ``Deletion:`` until it has arrived (here, never: the address
    refuses)."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = "http://127.0.0.1:9/v1/events"  # refused
    assert tool.run("hello").returncode == 0
    ids = tool.ids_file.read_text()
    status = tool.run("telemetry", "status").stdout
    assert status.startswith("Telemetry for cli-app is on")
    assert "Install id:  " in status and "Deletion:" not in status

    for variable in ("DO_NOT_TRACK", "CLI_APP_TELEMETRY_DISABLED"):
        tool.env[variable] = "1"
        assert tool.run("hello").returncode == 0
        assert tool.run("telemetry", "status").stdout.startswith("Telemetry for cli-app is off")
        assert tool.ids_file.read_text() == ids  # the number stays
        del tool.env[variable]

    tool.env["DO_NOT_TRACK"] = "1"  # disable works with it set
    assert tool.run("telemetry", "disable").returncode == 0
    assert not tool.ids_file.exists()
    status = tool.run("telemetry", "status").stdout
    assert re.search(r"^Deletion: ", status, flags=re.M), status


def test_what_the_author_did_not_declare_is_a_placeholder_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / "acme_tool.py").write_text(
        "from cli_telemetry import Telemetry\ntelemetry = Telemetry('acme', version='1')\n"
    )
    result = generate("acme_tool:telemetry", cwd=tmp_path)
    assert result.returncode == 0
    for field, placeholder in (
        ("collected_by", "<who collects the data>"),
        ("contact", "<how to contact them>"),
        ("purpose", "<why the data is collected>"),
        ("retention_days", "<how long the data is kept>"),
    ):
        assert placeholder in result.stdout
        assert (
            f"warning: {field} is not declared, so the page says {placeholder}: declare it in"
            f" Telemetry(..., privacy=Privacy({field}=...))\n"
        ) in result.stderr
    assert result.stderr.count("\n") == 4
    # Still plain (but for the placeholders, which the author is told of).
    assert problems(result.stdout, declared=False) == []


def test_privacy_takes_no_json(tmp_path: Path) -> None:
    result = generate("cli_app.cli:telemetry", "--format", "json", cwd=tmp_path)
    assert result.returncode == 2
    assert "--privacy prints Markdown" in result.stderr


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"collected_by": ""}, "collected_by must be one line of text"),
        ({"contact": "a\nb"}, "contact must be one line of text"),
        ({"purpose": 3}, "purpose must be one line of text"),
        ({"retention_days": 0}, "retention_days must be a whole number of at least 1"),
        ({"retention_days": True}, "retention_days must be a whole number of at least 1"),
        ({"forwarded_to": "PostHog"}, "forwarded_to must be a list of lines of text"),
    ],
)
def test_a_bad_declaration_is_a_configuration_error(
    details: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Privacy(**details)  # type: ignore[arg-type]


def test_privacy_must_be_a_privacy() -> None:
    with pytest.raises(ConfigurationError, match=r"privacy must be a cli_telemetry\.Privacy"):
        Telemetry("acme", version="1", privacy={"contact": "x"})  # type: ignore[arg-type]
    assert Telemetry("acme", version="1").config.privacy == Privacy()


# -- the library's own PRIVACY.md ---------------------------------------------------------


def test_the_librarys_privacy_page_reads_plainly_too() -> None:
    assert problems((ROOT / "PRIVACY.md").read_text()) == []
