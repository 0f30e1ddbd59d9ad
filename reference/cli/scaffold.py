"""``orcakit flavor new``: orcakit's flavor template (``orcakit.template``), run with cookiecutter.

The same template and the same questions as ``cookiecutter <template folder>``; answers are
given as ``KEY=VALUE`` (cookiecutter's extra context) and ``--no-input`` takes the defaults for
the rest. Before anything is written the answers are checked with the rules of the template's
own pre-generation hook (imported, not copied), so a refused answer is one what / why / fix
error and nothing is left on disk — not even cookiecutter's replay file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from orcakit import ConfigurationError, OrcakitError

INSTALL_FIX = "install it with the template extra: pip install 'orcakit[template]'"


def template_dir() -> Path:
    from orcakit.template import TEMPLATE_DIR

    return TEMPLATE_DIR


def parse_answers(items: tuple[str, ...], questions: dict[str, object]) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict; an item without '=', an unknown key or a value outside a
    choice question's list is refused."""
    answers: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(
                f"answer {item!r} is not KEY=VALUE",
                fix=f"give answers as KEY=VALUE, e.g. flavor_name=myorch (questions: {', '.join(questions)})",
            )
        if key not in questions:
            raise ConfigurationError(
                f"the flavor template asks no question {key!r}",
                fix=f"answer one of: {', '.join(questions)}",
            )
        choices = questions[key]
        if isinstance(choices, list) and value not in choices:
            raise ConfigurationError(
                f"{key}={value!r} is not one of its choices",
                why="the template has a working starting point for each choice it offers",
                fix=f"answer one of: {', '.join(f'{key}={choice}' for choice in choices)}",
            )
        answers[key] = value
    return answers


def new_flavor(items: tuple[str, ...], *, no_input: bool, output_dir: Path) -> tuple[Path, dict[str, str]]:
    """Generate a flavor package into ``output_dir``; returns its folder and the answers."""
    try:
        from cookiecutter.exceptions import CookiecutterException, OutputDirExistsException
        from cookiecutter.generate import generate_context
        from cookiecutter.main import cookiecutter
        from cookiecutter.prompt import prompt_for_config
    except ImportError:
        raise ConfigurationError(
            "`orcakit flavor new` needs cookiecutter, which is not installed here",
            why="the flavor template is a cookiecutter template",
            fix=INSTALL_FIX,
        ) from None
    from orcakit.template.hooks.pre_gen_project import problems

    template = template_dir()
    context_file = template / "cookiecutter.json"

    questions = {key: value for key, value in json.loads(context_file.read_text()).items() if not key.startswith("_")}
    given = parse_answers(items, questions)
    try:
        context = generate_context(context_file=str(context_file), extra_context=given)
    except ValueError as exc:  # cookiecutter's own refusal of an answer (choices are checked above)
        raise ConfigurationError(str(exc).strip(), fix="answer as the message says") from None
    answers = prompt_for_config(context, no_input)
    found = problems(answers)
    if found:
        what = "; ".join(what for what, _, _ in found)
        raise ConfigurationError(
            f"{what} (nothing was generated)",
            why="; ".join(why for _, why, _ in found),
            fix="; ".join(fix for _, _, fix in found),
        )
    chosen = {key: answers[key] for key in questions}
    # cookiecutter's own state (replay file, cloned templates) goes to a folder that is removed
    # afterwards: the new project folder is all this command leaves.
    with tempfile.TemporaryDirectory(prefix="orcakit-flavor-new-") as state:
        try:
            project = cookiecutter(
                str(template), no_input=True, extra_context=chosen, output_dir=str(output_dir),
                default_config={"cookiecutters_dir": state, "replay_dir": state},
            )
        except OutputDirExistsException:
            raise ConfigurationError(
                f"{output_dir / answers['__project_slug']} exists already",
                why="a new flavor package is generated into a folder of its own",
                fix="remove it, or generate elsewhere with --output-dir DIR",
            ) from None
        except CookiecutterException as exc:  # the hooks refused or failed: they said why on stderr
            raise OrcakitError(f"the flavor template failed: {exc}", fix="see the messages above") from None
    return Path(project), chosen
