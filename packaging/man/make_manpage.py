"""Writes nixfleet-log-exporter(1): the hand-written prose of the template, with each
`.\" @OPTIONS <subcommand>@` marker replaced by that subcommand's options as its own --help
prints them, so the page lists every flag the binary has.
Usage: make_manpage.py BINARY VERSION TEMPLATE OUTPUT"""
import re
import subprocess
import sys

# CLI11's help: an option line is "  --name[,--alias] TYPE[=default]" followed, on the same line
# after a run of spaces or on the next lines, by its description.
_OPTION = re.compile(r"^  (-\S+)(?: (\S.*?))?(?: {2,}(\S.*))?$")
_POSITIONAL = re.compile(r"^  ([a-z]\S*) (\S.*?)(?: {2,}(\S.*))?$")
_CONTINUATION = re.compile(r"^ {20,}(\S.*)$")


def help_entries(binary, subcommand):
    """[(kind, names, type, description)] from `binary SUBCOMMAND --help`, in the help's order."""
    text = subprocess.run([binary, subcommand, "--help"], capture_output=True, text=True, check=True).stdout
    entries, section = [], None
    for line in text.splitlines():
        if line in ("Positionals:", "Options:"):
            section = line[:-1].lower()
            continue
        if section is None or not line.strip():
            continue
        continuation = _CONTINUATION.match(line)
        if continuation and entries:
            entries[-1][3] = (entries[-1][3] + " " + continuation.group(1)).strip()
            continue
        match = (_OPTION if section == "options" else _POSITIONAL).match(line)
        if match:
            entries.append([section, match.group(1), match.group(2) or "", match.group(3) or ""])
    return entries


def metavar(type_text):
    """CLI11's type column -> what the page shows after the flag, and the default if any."""
    # The default ends the type column, before a repeatable option's " ..."; a list default is
    # printed in brackets: "TEXT=[127.0.0.1:9761] ...".
    default = re.search(r"=\[?([^=\s\[\]]+)\]?$", type_text.removesuffix(" ..."))
    choices = re.search(r"\{([^}]*)\}", type_text)
    repeatable = re.match(r"^\S+ \.\.\.", type_text) is not None
    if choices:
        value = choices.group(1).replace(",", "|")
    elif type_text.startswith("UINT:SIZE"):
        value = "SIZE"
    elif type_text.startswith("UINT"):
        value = "N"
    elif type_text.startswith("TEXT:DIR"):
        value = "DIR"
    elif type_text.startswith("TEXT"):
        value = "VALUE"
    else:
        value = ""
    return value, (default.group(1) if default else None), repeatable


def troff_escape(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text)


def options_block(binary, subcommand):
    lines = []
    for section, names, type_text, description in help_entries(binary, subcommand):
        value, default, repeatable = metavar(type_text)
        lines.append(".TP")
        if section == "positionals":
            lines.append(f".I {troff_escape(names)}" + (" ..." if repeatable else ""))
        else:
            shown = ", ".join(f"\\fB{troff_escape(name)}\\fR" for name in names.split(","))
            lines.append(shown + (f" \\fI{troff_escape(value)}\\fR" if value else ""))
        note = []
        if repeatable and section == "options" and "repeatable" not in description:
            note.append("Repeatable.")
        if "REQUIRED" in type_text and section == "options":
            note.append("Required.")
        if default is not None:
            note.append(f"Default: {default}.")
        sentence = description.rstrip(".") + "." if description else ""
        lines.append(troff_escape(" ".join([sentence, *note]).strip()))
    return "\n".join(lines)


def main():
    binary, version, template, output = sys.argv[1:5]
    page = open(template, encoding="utf-8").read().replace("@VERSION@", version)
    page = re.sub(r'^\.\\" @OPTIONS (\w+)@$', lambda m: options_block(binary, m.group(1)), page, flags=re.M)
    with open(output, "w", encoding="utf-8") as out:
        out.write(page)


if __name__ == "__main__":
    main()
