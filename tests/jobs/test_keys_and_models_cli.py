"""`eraser keys` and `eraser models`: what an operator runs, end to end through the CLI."""

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from core.auth.keys import authenticate
from core.cli import main
from core.registry import UnknownModelError, list_models, resolve_model
from core.settings import Settings


def test_keys_create_prints_the_key_once_and_revoke_disables_it(
    settings: Settings, db_session: Session
) -> None:
    runner = CliRunner()

    created = runner.invoke(main, ["keys", "create", "--principal", "safety-team"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert re.fullmatch(r"ek_[A-Za-z0-9_-]{43}", key)
    assert authenticate(db_session, key) == "safety-team"
    db_session.commit()  # authenticate records last_used_at; release that row lock

    listed = runner.invoke(main, ["keys", "list"])
    assert listed.exit_code == 0
    assert "safety-team" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout  # the secret is never shown again

    revoked = runner.invoke(main, ["keys", "revoke", key[:11]])
    assert revoked.exit_code == 0, revoked.output
    db_session.expire_all()
    assert authenticate(db_session, key) is None
    assert "revoked" in runner.invoke(main, ["keys", "list"]).stdout
    assert runner.invoke(main, ["keys", "revoke", key[:11]]).exit_code != 0


def test_keys_create_refuses_a_bad_principal(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["keys", "create", "--principal", "../root"])
    assert result.exit_code == 2
    assert "principal" in result.output


def test_models_add_list_remove(settings: Settings, tmp_path: pytest.TempPathFactory) -> None:
    runner = CliRunner()
    folder = settings.resolved_data_dir / "sd-mini"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    assert runner.invoke(main, ["models", "add", "sd-mini", str(folder)]).exit_code == 0
    assert runner.invoke(main, ["models", "add", "hub-model", "org/model"]).exit_code == 0
    listed = runner.invoke(main, ["models", "list"]).stdout
    assert re.search(r"^sd-mini\tfolder\tavailable\t", listed, re.MULTILINE)
    assert re.search(r"^hub-model\thub\t", listed, re.MULTILINE)
    assert re.search(r"^demo\t", listed, re.MULTILINE)
    assert resolve_model(settings, "sd-mini").source == str(folder)

    assert runner.invoke(main, ["models", "remove", "sd-mini"]).exit_code == 0
    with pytest.raises(UnknownModelError):
        resolve_model(settings, "sd-mini")
    assert runner.invoke(main, ["models", "add", "Bad Name", "x"]).exit_code == 2
    runner.invoke(main, ["models", "remove", "hub-model"])


def test_settings_models_win_over_the_registry_file(settings: Settings) -> None:
    configured = settings.model_copy(update={"models": {"demo": "org/real-demo"}})
    demo = resolve_model(configured, "demo")
    assert demo.source == "org/real-demo"
    assert [model.name for model in list_models(configured)].count("demo") == 1
