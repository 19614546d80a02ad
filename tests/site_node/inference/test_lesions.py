"""Lesions of a predicted mask and the DICOM-SEG that carries them, checked voxel by voxel."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from site_node.inference.dicom_seg import MAX_SEGMENTS, MIN_VOXELS, build_seg, split_lesions
from site_node.inference.study import read_study_folder


def _cube(mask: np.ndarray, corner: tuple[int, int, int], side: int) -> None:
    x, y, z = corner
    mask[x : x + side, y : y + side, z : z + side] = 1


def test_lesions_are_numbered_largest_first_with_their_slices() -> None:
    mask = np.zeros((60, 50, 40), dtype=np.uint8)
    _cube(mask, (40, 30, 20), 3)  # 27 voxels
    _cube(mask, (5, 5, 2), 5)  # 125 voxels, slices 2..6
    mask[58, 1, 39] = 1  # a speck below MIN_VOXELS, far from the rest (the box spans the volume)
    labels, lesions = split_lesions(mask, voxel_ml=0.002)
    assert [x.voxels for x in lesions] == [125, 27]
    assert [x.number for x in lesions] == [1, 2]
    assert lesions[0].slices == (2, 3, 4, 5, 6) and lesions[1].slices == (20, 21, 22)
    assert lesions[0].volume_ml == 0.25
    assert labels.dtype == np.uint8 and labels.shape == mask.shape
    assert (labels == 1).sum() == 125 and labels[5, 5, 2] == 1 and labels[40, 30, 20] == 2
    assert labels[58, 1, 39] == 0  # left out, as it is smaller than MIN_VOXELS voxels
    assert MIN_VOXELS > 1


def test_diagonal_neighbours_join_and_only_max_segments_are_kept() -> None:
    mask = np.zeros((40, 40, 40), dtype=np.uint8)
    _cube(mask, (0, 0, 0), 2)
    _cube(mask, (2, 2, 2), 2)  # touches the first only by a corner: one lesion under 26-connectivity
    _, joined = split_lesions(mask, 1.0)
    assert [x.voxels for x in joined] == [16]

    many = np.zeros((100, 100, 12), dtype=np.uint8)
    for k in range(MAX_SEGMENTS + 5):
        _cube(many, (4 * (k % 10) + 1, 40 * (k // 10) + 1, 1), 2)
    _, lesions = split_lesions(many, 1.0)
    assert len(lesions) == MAX_SEGMENTS


def test_an_empty_mask_has_no_lesion() -> None:
    labels, lesions = split_lesions(np.zeros((8, 8, 8), dtype=np.uint8), 1.0)
    assert lesions == [] and not labels.any()


def test_the_seg_holds_each_lesion_on_its_own_source_slices(study_dir: Path) -> None:
    study = read_study_folder(study_dir)
    shape = study.volume.array.shape  # (column, row, slice)
    mask = np.zeros(shape, dtype=np.uint8)
    _cube(mask, (10, 12, 1), 4)
    _cube(mask, (shape[0] - 8, shape[1] - 8, shape[2] - 4), 3)
    labels, lesions = split_lesions(mask, 0.001)
    seg = build_seg(study, labels, lesions, "seg3d", 2, "site-a")
    assert seg.SegmentationType == "BINARY" and len(seg.SegmentSequence) == 2
    # only frames that hold a lesion are written (4 slices of lesion 1, 3 of lesion 2)
    assert int(seg.NumberOfFrames) == 7
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "seg3d"
    for number, lesion in ((1, lesions[0]), (2, lesions[1])):
        for k in lesion.slices:
            source = study.datasets[k]
            plane = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[str(source.SOPInstanceUID)],
                segment_numbers=[number],
                combine_segments=False,
            )[0, :, :, 0]
            assert np.array_equal(plane.astype(bool), (labels[:, :, k] == number).T)
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for series in seg.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == {str(ds.SOPInstanceUID) for ds in study.datasets}
    assert isinstance(seg, hd.seg.Segmentation)


def _canonical(component_of: np.ndarray) -> np.ndarray:
    """Component ids renumbered by first appearance: equal for two labellings of the same partition."""
    _, first, inverse = np.unique(component_of, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse]


@pytest.mark.parametrize("share", [0.001, 0.02, 0.3])
def test_sparse_and_dense_labelling_find_the_same_components(share: float) -> None:
    """The foreground-voxel graph and cc3d's labelling agree on random masks, edges and corners included."""
    from site_node.inference.dicom_seg import _components_dense, _components_sparse

    rng = np.random.default_rng(int(share * 1000))
    mask = (rng.random((23, 17, 11)) < share).astype(np.uint8)
    mask[0, 0, 0] = mask[-1, -1, -1] = mask[0, -1, 0] = 1  # corners: neighbours must not wrap around
    where = np.flatnonzero(mask)
    sparse = _components_sparse(where, mask.shape)
    dense = _components_dense(mask > 0, where)
    assert np.array_equal(_canonical(sparse), _canonical(dense))


def test_both_labelling_paths_give_the_same_lesions(monkeypatch: pytest.MonkeyPatch) -> None:
    import site_node.inference.dicom_seg as S

    rng = np.random.default_rng(5)
    mask = np.zeros((40, 30, 20), dtype=np.uint8)
    for _ in range(12):
        x, y, z = rng.integers(0, 36), rng.integers(0, 26), rng.integers(0, 16)
        mask[x : x + rng.integers(1, 5), y : y + rng.integers(1, 5), z : z + rng.integers(1, 5)] = 1
    results = []
    for share in (1.0, 0.0):  # everything sparse, then everything dense
        monkeypatch.setattr(S, "SPARSE_SHARE", share)
        labels, lesions = S.split_lesions(mask, 0.5)
        results.append((labels, [(x.number, x.voxels, x.slices) for x in lesions]))
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1] and results[0][1]
