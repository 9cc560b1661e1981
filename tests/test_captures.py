"""Reading ``nvidia-smi topo -m`` captures from disk (:mod:`gpufair.captures`), the one reader
the benchmarks, the demo and the e2e harness share: what it loads, what it skips, and the
error that names the file."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from gpufair import captures
from gpufair.core import topology, topology_matrix

EIGHT_GPU = "dgx-a100-8gpu-nv12-12nic-4numa.txt"
TWO_GPU = "della-2x-a100-pcie-2numa-2nic.txt"
AMD = "amd-rocm-showtopo-archer2-4x-mi210-xgmi.txt"


def copy_captures(shared_data: pathlib.Path, into: pathlib.Path, *names: str) -> pathlib.Path:
    into.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(shared_data / "topology" / name, into / name)
    return into


def test_load_is_the_agents_parse(shared_data: pathlib.Path) -> None:
    path = shared_data / "topology" / EIGHT_GPU
    expected = topology.from_matrix(topology_matrix.parse(path.read_text()))
    assert captures.load(path) == expected


@pytest.mark.parametrize(
    ("content", "names"),
    [
        pytest.param(None, ("missing.txt",), id="missing-file"),
        pytest.param("garbage\n", ("garbage.txt",), id="not-a-capture"),
    ],
)
def test_load_names_the_file_it_cannot_read(
    tmp_path: pathlib.Path, content: str | None, names: tuple[str, ...]
) -> None:
    path = tmp_path / names[0]
    if content is not None:
        path.write_text(content)
    with pytest.raises(captures.CaptureError) as error:
        captures.load(path)
    assert str(path) in str(error.value)


def test_load_dir_keeps_the_eight_gpu_nvidia_captures_by_stem(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    directory = copy_captures(shared_data, tmp_path, EIGHT_GPU, TWO_GPU, AMD)
    (directory / "notes.md").write_text("not a capture")
    found = captures.load_dir(directory)
    assert sorted(found) == [EIGHT_GPU.removesuffix(".txt")]
    assert len(found[EIGHT_GPU.removesuffix(".txt")].gpus) == 8


def test_load_dir_by_gpu_count(shared_data: pathlib.Path, tmp_path: pathlib.Path) -> None:
    directory = copy_captures(shared_data, tmp_path, EIGHT_GPU, TWO_GPU)
    assert sorted(captures.load_dir(directory, gpus=2)) == [TWO_GPU.removesuffix(".txt")]


def test_load_dir_without_a_fitting_capture_names_the_directory(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    directory = copy_captures(shared_data, tmp_path, TWO_GPU, AMD)
    with pytest.raises(FileNotFoundError, match=str(directory)):
        captures.load_dir(directory)


def test_the_default_directory_of_a_checkout_is_the_shared_data(
    shared_data: pathlib.Path,
) -> None:
    assert captures.default_dir().resolve() == (shared_data / "topology").resolve()
