"""What a config re-read under a running serve applies, and what waits for a restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from callrec.config import AgiConfig, AriConfig, Config, Destination, PromptNames
from callrec.config_reload import RESTART_ONLY, plan_reload
from callrec.consent import ConsentPolicy

RUNNING = Config(
    path=Path("/etc/callrec/callrec.toml"),
    ari=AriConfig(url="http://127.0.0.1:8088", password="old-secret"),
    destinations=MappingProxyType({"100": Destination("PJSIP/agent")}),
)


def test_prompts_destinations_and_consent_apply_to_the_next_calls() -> None:
    loaded = replace(
        RUNNING,
        prompts=replace(RUNNING.prompts, names=PromptNames(disclosure="callrec/notice")),
        destinations=MappingProxyType({"100": Destination("PJSIP/busy")}),
        consent=ConsentPolicy(grace=5.0),
    )
    plan = plan_reload(RUNNING, loaded)
    assert plan.changed == ("consent", "prompts", "destinations")
    assert plan.needs_restart == ()
    assert plan.config.prompt_for("100", "en", "disclosure").name == "callrec/notice"
    assert plan.config.destination_for("100") == Destination("PJSIP/busy")
    assert plan.config.consent.grace == 5.0


def test_keys_the_process_is_built_on_keep_their_running_values() -> None:
    loaded = replace(
        RUNNING,
        ari=replace(RUNNING.ari, url="http://10.0.0.9:8088", app="other"),
        recording=replace(RUNNING.recording, media_port=40000, format="slin16"),
        agi=AgiConfig(host="0.0.0.0", port=4574),
    )
    plan = plan_reload(RUNNING, loaded)
    assert plan.needs_restart == ("ari.url", "ari.app", "recording.media_port", "agi.listen")
    assert plan.config.ari == RUNNING.ari
    assert (plan.config.agi.host, plan.config.agi.port) == ("127.0.0.1", 4573)
    # The same section's other keys still apply.
    assert plan.config.recording.media_port == 0
    assert plan.config.recording.format == "slin16"
    assert plan.changed == ("recording",)


def test_a_new_password_is_named_by_its_key_only() -> None:
    loaded = replace(RUNNING, ari=replace(RUNNING.ari, password="new-secret"))
    plan = plan_reload(RUNNING, loaded)
    assert plan.needs_restart == ("ari.password",)
    assert plan.config.ari.password == "old-secret"
    assert plan.changed == ()
    assert "secret" not in repr((plan.changed, plan.needs_restart))


def test_an_unchanged_file_changes_nothing() -> None:
    plan = plan_reload(RUNNING, replace(RUNNING))
    assert (plan.changed, plan.needs_restart) == ((), ())
    assert plan.config == RUNNING


def test_every_restart_only_key_names_fields_its_section_has() -> None:
    # A renamed field would otherwise show only at the first reload, as a crash.
    for fixed in RESTART_ONLY:
        section = getattr(RUNNING, fixed.section)
        for name in fixed.fields:
            assert hasattr(section, name), (fixed.key, name)
