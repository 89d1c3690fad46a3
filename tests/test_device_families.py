"""Device ids, aliases and suggestions stay within one chip family; the quick profile listing
agrees with the validated catalog."""

from __future__ import annotations

import pytest

from planner.devices import chip_words, chips_named, load_catalog, load_profile, suggest_devices
from planner.errors import DeviceError
from planner.profile_files import list_profiles


@pytest.fixture(scope="module")
def listing():
    return list_profiles(include_user=False)


def _family(listing, pid: str) -> str:
    return listing.profiles[pid].family


def test_quick_listing_matches_the_validated_catalog(listing):
    cat = load_catalog(include_user=False)
    assert listing.ids() == cat.ids()
    for pid, s in listing.profiles.items():
        p = cat.entries[pid].profile
        assert (s.name, s.family, s.chip, s.memory_architecture, s.ram_bytes, s.vram_bytes, s.default_os) == \
            (p.name, p.family, p.chip, p.memory_architecture, p.ram_bytes, p.vram_bytes, p.default_os)
        assert s.carveout_options_bytes == p.carveout_options() and s.oses == list(p.os)
        assert s.bandwidth_gbps == p.bandwidth_gbps and s.aliases == p.aliases


def test_every_profile_family_has_words(listing):
    families = {c.family for c in chip_words()}
    assert {s.family for s in listing.profiles.values()} <= families


@pytest.mark.parametrize("field", ["id", "aliases"])
def test_ids_and_aliases_name_only_their_own_chip(listing, field):
    """An id or alias that names a chip names the profile's own (no alias of a Strix Halo box that
    reads like a Strix Point one)."""
    for s in listing.profiles.values():
        names = [s.id] if field == "id" else s.aliases
        for name in names:
            chips = chips_named(name)
            assert all(c.family == s.family for c in chips), (name, [c.family for c in chips])
            assert not chips or any(c.covers(s) for c in chips), name


@pytest.mark.parametrize("ref", ["strix-halo", "Strix Halo", "halo", "ai-max-395", "strix-halo-64g", "8060s",
                                 "gfx1151", "ai-max-359-64g", "framework-desktop"])
def test_strix_halo_words_suggest_only_strix_halo(listing, ref):
    ids, _ = suggest_devices(ref, listing.profiles.values())
    assert ids and {_family(listing, i) for i in ids} == {"strix-halo"}, ids


def test_ram_in_the_reference_narrows_the_suggestions(listing):
    ids, _ = suggest_devices("strix-halo-64g", listing.profiles.values())
    assert ids == ["ai-max-395-64g", "ai-max-395-64g-minipc"]


def test_m4_max_never_suggests_the_m4_pro(listing):
    ids, _ = suggest_devices("m4-max", listing.profiles.values())
    assert ids == ["apple-m4-max-64g", "apple-m4-max-128g"]
    ids, _ = suggest_devices("m4-pro-24g", listing.profiles.values())
    assert ids == ["apple-m4-pro-48g"]


def test_misspelt_ids_get_the_closest_family_first(listing):
    ids, _ = suggest_devices("ryzen-ai-9-hx-37-32g", listing.profiles.values())
    assert ids[0] == "ryzen-ai-9-hx-370-32g"
    ids, _ = suggest_devices("rtx-409", listing.profiles.values())
    assert ids[0] == "rtx-4090"


def test_a_chip_without_profiles_gets_no_other_chip():
    with pytest.raises(DeviceError) as e:
        load_profile("phoenix-780m")
    assert "no shipped profile for the phoenix family" in e.value.message
    assert "ai-max" not in (e.value.hint or "") and "hx-370" not in (e.value.hint or "")


def test_a_family_name_is_answered_with_its_profiles():
    with pytest.raises(DeviceError) as e:
        load_profile("strix-halo")
    assert "names a chip" in e.value.message
    assert "ai-max-395-64g" in e.value.hint and "ryzen-ai-9" not in e.value.hint


def test_ids_and_aliases_still_load_validated_profiles():
    p = load_profile("hp-zbook-ultra-g1a-64g")
    assert p.id == "ai-max-395-64g" and p.family == "strix-halo"
    assert load_profile("AI-MAX-395-64G").id == "ai-max-395-64g"


def test_a_user_profile_replaces_the_shipped_one_when_found_by_id(tmp_path, monkeypatch):
    src = next(s for s in list_profiles(include_user=False).profiles.values() if s.id == "rtx-4090")
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "mine.toml").write_bytes(src.content.replace(b'name = "', b'name = "MINE ', 1))
    (d / "broken.toml").write_text("id = 'x'\n")
    monkeypatch.setenv("MEMFIT_CONFIG_DIR", str(tmp_path))
    assert load_profile("rtx-4090").name.startswith("MINE")
    listing = list_profiles()
    assert listing.profiles["rtx-4090"].origin == "user"
    assert len(listing.problems) == 1 and "broken.toml" in listing.problems[0]
