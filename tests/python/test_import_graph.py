"""tokengate's `src/` has no import cycle between files (ARCHITECTURE.md, "Layers"),
and the checker that says so finds the cycles it must."""

from pathlib import Path

from import_graph import Graph

ROOT = Path(__file__).resolve().parents[2]


def crate(tmp_path, files):
    for rel, text in files.items():
        p = tmp_path / "src" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return Graph(str(tmp_path / "src"))


def names(g):
    return [["::".join(m) or "crate" for m in c] for c in g.cycles()]


def test_src_has_no_import_cycle():
    g = Graph(str(ROOT / "src"))
    cycles = names(g)
    assert cycles == [], f"import cycles between files: {cycles}"
    assert len(g.files) > 50  # it read the crate


def test_a_parent_and_child_using_each_other_are_a_cycle(tmp_path):
    g = crate(
        tmp_path,
        {
            "main.rs": "mod auth;\nfn main() {}\n",
            "auth/mod.rs": "mod sessions;\npub struct Service;\nfn f() { sessions::login(); }\n",
            "auth/sessions.rs": "use super::Service;\npub fn login() {}\n",
        },
    )
    assert names(g) == [["auth", "auth::sessions"]]


def test_a_cycle_across_folders_through_a_reexport_is_found(tmp_path):
    g = crate(
        tmp_path,
        {
            "main.rs": "mod config;\nmod store;\nfn main() {}\n",
            "config/mod.rs": "mod error;\npub use error::ConfigError;\nuse crate::store::Settings;\n",
            "config/error.rs": "pub struct ConfigError;\n",
            "store/mod.rs": "pub struct Settings;\nfn check() { crate::config::check(); }\n",
        },
    )
    # `check` is not defined anywhere: the path still names config/mod.rs.
    assert names(g) == [["config", "store"]]


def test_a_facade_that_only_reexports_its_children_is_no_cycle(tmp_path):
    g = crate(
        tmp_path,
        {
            "main.rs": "mod store;\nfn main() { let _ = store::Store; }\n",
            "store/mod.rs": "mod error;\nmod layer;\npub use error::StoreError;\npub use layer::Store;\n",
            "store/error.rs": "pub struct StoreError;\n",
            "store/layer.rs": "use super::StoreError;\npub struct Store(StoreError);\n",
        },
    )
    assert names(g) == []
    # ...but a re-export the facade also uses itself is a real edge.
    g = crate(
        tmp_path,
        {"store/mod.rs": "mod error;\nmod layer;\npub use layer::Store;\npub fn open() -> Store { todo!() }\npub struct StoreError;\n"},
    )
    assert names(g) == [["store", "store::layer"]]


def test_test_modules_and_comments_are_not_dependencies(tmp_path):
    g = crate(
        tmp_path,
        {
            "main.rs": "mod a;\nmod b;\nfn main() {}\n",
            "a.rs": "pub struct A;\n// crate::b::B would be a cycle\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}\n",
            "b.rs": "use crate::a::A;\npub struct B(A);\n",
        },
    )
    assert names(g) == []
