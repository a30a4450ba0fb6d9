"""The example packages under Examples/ are built against this checkout and run against a
real `sluice serve`, so the README's Swift snippet (which is Examples/QuickStart) cannot
drift from the client library.

Building an example resolves and compiles the whole dependency graph in its own .build,
so each build is bounded by EXAMPLE_BUILD_BOUND_S, a bound, not a timing assumption.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_BUILD_BOUND_S = 1200
EXAMPLE_RUN_BOUND_S = 120


def build_example(name: str) -> Path:
    package = REPO / "Examples" / name
    built = subprocess.run(["swift", "build", "--package-path", str(package)],
                           capture_output=True, text=True, timeout=EXAMPLE_BUILD_BOUND_S)
    assert built.returncode == 0, f"Examples/{name} does not build:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    bin_path = subprocess.run(["swift", "build", "--package-path", str(package), "--show-bin-path"],
                              capture_output=True, text=True, timeout=120).stdout.strip()
    return Path(bin_path) / name


def test_quickstart_writes_reads_back_and_ends(make_server):
    server = make_server()
    executable = build_example("QuickStart")
    read_before: set[str] = set()
    for attempt in (1, 2):  # the second run finds its topic already there, with the first run's records
        ran = subprocess.run([str(executable), server.target], capture_output=True, text=True,
                             timeout=EXAMPLE_RUN_BOUND_S)
        assert ran.returncode == 0, f"run {attempt}: {ran.stdout}\n{ran.stderr}"
        lines = ran.stdout.splitlines()
        wrote = {line[len("wrote "):] for line in lines if line.startswith("wrote ")}
        read = {line[len("read "):] for line in lines if line.startswith("read ")}
        assert len(wrote) == 3, ran.stdout
        # It reads up to the high watermark: what this run wrote and everything before it,
        # each record once, and then it ends.
        assert wrote <= read, ran.stdout
        assert read_before <= read, ran.stdout
        assert len(read) == 3 * attempt, ran.stdout
        assert len([line for line in lines if line.startswith("read ")]) == len(read), ran.stdout
        assert lines[-1] == "done"
        read_before = read


# Every ```swift block of these files is compiled (test_doc_snippets_compile). A block is
# wrapped in `func snippetN() async throws { ... }` in a file of its own, its `import` lines
# hoisted above it and `import SluiceClient` added, so top-level statements and fragments
# compile as written. Names a fragment uses without declaring them are declared in an HTML
# comment right before its fence, which the reader of the rendered page does not see:
#     <!-- snippet-given: let lines: [String] = [] -->
# and a block that is deliberately not Swift that compiles is preceded by
#     <!-- snippet: not compiled -->
SNIPPET_FILES = ["README.md", "docs/client.md"]
FENCE = re.compile(r"(?P<marks>(?:<!--[^\n]*-->\n)*)```swift\n(?P<code>.*?)```", re.S)
GIVEN = re.compile(r"<!--\s*snippet-given:(.*?)-->")
SNIPPETS_PACKAGE = """// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Snippets",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sluice", path: "{repo}"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .target(
            name: "Snippets",
            dependencies: [
                .product(name: "SluiceClient", package: "sluice"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]),
    ]
)
"""


def snippets() -> list[tuple[str, str]]:
    """(where, wrapped source) for every ```swift block of SNIPPET_FILES."""
    found = []
    for name in SNIPPET_FILES:
        text = (REPO / name).read_text()
        for match in FENCE.finditer(text):
            marks, code = match.group("marks"), match.group("code")
            if "snippet: not compiled" in marks:
                continue
            line = text.count("\n", 0, match.start("code")) + 1
            lines = code.splitlines()
            imports = sorted({entry.strip() for entry in lines if entry.startswith("import ")} | {"import SluiceClient"})
            body = [entry for entry in lines if not entry.startswith("import ")]
            given = [declaration.strip() for declaration in GIVEN.findall(marks)]
            index = len(found)
            source = "\n".join(imports) + f"\n\n// {name}:{line}\nfunc snippet{index}() async throws {{\n" \
                + "\n".join(f"    {entry}" for entry in given + body) + "\n}\n"
            found.append((f"{name}:{line}", source))
    return found


def test_doc_snippets_compile(tmp_path):
    found = snippets()
    readme = [where for where, _ in found if where.startswith("README.md")]
    assert readme, "the README's Swift snippet was not found"
    package = tmp_path / "Snippets"
    sources = package / "Sources" / "Snippets"
    sources.mkdir(parents=True)
    (package / "Package.swift").write_text(SNIPPETS_PACKAGE.replace("{repo}", str(REPO)))
    for index, (_, source) in enumerate(found):
        (sources / f"Snippet{index}.swift").write_text(source)
    built = subprocess.run(["swift", "build", "--package-path", str(package)],
                           capture_output=True, text=True, timeout=EXAMPLE_BUILD_BOUND_S)
    where = "\n".join(f"Snippet{index}.swift: {place}" for index, (place, _) in enumerate(found))
    assert built.returncode == 0, f"a snippet does not compile:\n{where}\n{built.stdout[-6000:]}\n{built.stderr[-4000:]}"
