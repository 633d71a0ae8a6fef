"""TreeSHAP contributions of a LightGBM booster from per-leaf tables: LightGBM's numbers, 4-6x faster.

LightGBM's ``pred_contrib`` runs the original TreeSHAP recursion (Lundberg et al. 2018), whose work per
row and tree grows with leaves x depth². Naming drivers for the 20,000 accounts a batch job explains
took 14 s of a million-account scoring run with three models of a few hundred depth-5 trees each
(about 3.4 s from the tables; docs/models.md, "Drivers from leaf tables").
This module computes the same path-dependent TreeSHAP values the way Fast TreeSHAP v2 does (Yang 2021):

For a leaf with value v whose path splits on the distinct features P (d of them), feature i in P gets

    phi_i += v (o_i - z_i) sum_k w(k, d) [t^k] prod_{j in P, j != i} (z_j + o_j t),   w(k, d) = k!(d-k-1)!/d!

where z_j is the share of the training rows that follow the path's splits on j (LightGBM's data counts,
as its TreeSHAP uses) and o_j is 1 when the row itself follows all of them, else 0. With o binary, a
leaf's contributions depend only on which of its d features the row follows: a table of 2^d x d numbers
per leaf, computed once per booster. Per row, a tree costs one decision per node (LightGBM's own rule for
missing values, zeros and categories) and d table reads per leaf.

The values equal ``pred_contrib``'s to rounding (sums in another order; ~1e-14 on raw scores of a few
units, tested); boosters this cannot serve (a leaf with more than `MAX_PATH_FEATURES` distinct features,
tables over `MAX_TABLE_SIZE` numbers, linear trees, several outputs) return None and the caller uses
``pred_contrib``. Kernels are compiled by numba (``nogil``; rows split over Python threads, which is
safe when a server calls from several threads at once, unlike numba's own parallel loops) and cached
on disk.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

__all__ = ["MAX_PATH_FEATURES", "MAX_TABLE_SIZE", "LeafTables", "contributions", "leaf_tables"]

#: Most distinct features on one leaf's path (a table of 2^d x d numbers per leaf); kamml's default
#: trees (depth 5) have at most 5.
MAX_PATH_FEATURES = 10

#: Most numbers in all of a booster's tables (64 MB); deeper or larger models use ``pred_contrib``.
MAX_TABLE_SIZE = 8_000_000

#: LightGBM's kZeroThreshold (a float 1e-35): smaller magnitudes are zero, in its decisions and inputs.
_ZERO = float(np.float32(1e-35))

#: Node kinds: a numerical split by its missing type (none, zero, NaN), or a categorical split.
_MISSING_ZERO, _MISSING_NAN, _CATEGORICAL = 1, 2, 3


@dataclass(frozen=True)
class LeafTables:
    """A booster's trees as flat arrays: nodes (decisions), leaves (features and tables), per tree ranges."""

    n_features: int
    tree_nodes: np.ndarray  # tree t's nodes are tree_nodes[t]:tree_nodes[t+1] (LightGBM's order)
    tree_leaves: np.ndarray  # tree t's leaves are tree_leaves[t]:tree_leaves[t+1]
    node_feature: np.ndarray
    node_threshold: np.ndarray
    node_kind: np.ndarray  # 0-2 numerical by missing type (none, zero, NaN), 3 categorical
    node_default_left: np.ndarray
    node_words: np.ndarray  # categorical nodes: their bitset is cat_words[node_words[k]:node_words_end[k]]
    node_words_end: np.ndarray
    cat_words: np.ndarray
    node_slot: np.ndarray  # which of the path's distinct features the node splits on (0 = first seen)
    node_left: np.ndarray  # children in the tree's own numbering: >= 0 a node, < 0 the leaf ~child
    node_right: np.ndarray
    leaf_depth: np.ndarray  # d: distinct features on the leaf's path
    leaf_features: np.ndarray  # leaf l's features in slot order: leaf_features[leaf_start[l]:...+d]
    leaf_start: np.ndarray
    table_start: np.ndarray  # leaf l's table: table[table_start[l] + pattern * d + slot]
    table: np.ndarray
    bias: float  # the expected value: pred_contrib's last column


_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], LeafTables | None]]
_CACHE = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _state(booster: Any, n_features: int) -> tuple[int, ...]:
    """What the cached tables of `booster` were built for: the width asked for and the trees it predicts with.

    Trees added or rolled back, or another best iteration, build the tables again; leaves edited in
    place (``set_leaf_output``) are not seen, and kamml never edits a fitted booster.
    """
    return (int(n_features), int(booster.num_trees()), int(getattr(booster, "best_iteration", 0) or 0))


def leaf_tables(booster: Any, n_features: int) -> LeafTables | None:
    """The tables of a `lightgbm.Booster` (its saved iterations, as its ``predict``), cached per booster.

    None when the booster is one this module does not serve (see the module docs).
    """
    state = _state(booster, n_features)
    with _CACHE_LOCK:
        cached = _CACHE.get(booster)
    if cached is not None and cached[0] == state:
        return cached[1]
    tables = _build(booster.model_to_string(), n_features)
    with _CACHE_LOCK:
        _CACHE[booster] = (state, tables)
    return tables


def contributions(tables: LeafTables, X: np.ndarray, threads: int = 1) -> np.ndarray:
    """Rows x (features + 1) TreeSHAP values and the expected value, as LightGBM's ``pred_contrib``.

    `threads` below 1 means every core, as LightGBM's ``num_threads`` 0 or -1.
    """
    matrix = np.ascontiguousarray(X, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != tables.n_features:
        raise ValueError(
            f"the TreeSHAP tables are for rows of {tables.n_features} features, got an array of shape "
            f"{matrix.shape}"
        )
    if threads < 1:
        threads = os.cpu_count() or 1
    out = np.zeros((matrix.shape[0], tables.n_features + 1))
    out[:, -1] = tables.bias
    t = tables
    args = (
        matrix,
        out,
        t.tree_nodes,
        t.tree_leaves,
        t.node_feature,
        t.node_threshold,
        t.node_kind,
        t.node_default_left,
        t.node_words,
        t.node_words_end,
        t.cat_words,
        t.node_slot,
        t.node_left,
        t.node_right,
        t.leaf_depth,
        t.leaf_features,
        t.leaf_start,
        t.table_start,
        t.table,
    )
    rows = matrix.shape[0]
    parts = max(1, min(int(threads), rows // 256))
    if parts == 1:
        _rows(0, rows, *args)
        return out
    bounds = np.linspace(0, rows, parts + 1).astype(np.int64)
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="kamml-shap") as pool:
        done = [pool.submit(_rows, int(lo), int(hi), *args) for lo, hi in itertools.pairwise(bounds)]
        for part in done:
            part.result()
    return out


# ---- building the tables from LightGBM's model text ------------------------------------------------


def _tree_blocks(model_text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The header's and each ``Tree=`` block's ``key=value`` lines of a LightGBM model string."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        else:
            key, sep, value = line.partition("=")
            if sep:
                current[key] = value
    return header, trees


def _numbers(block: dict[str, str], key: str, dtype: Any) -> np.ndarray:
    text = block.get(key, "").strip()
    return np.array(text.split(), dtype=dtype) if text else np.zeros(0, dtype=dtype)


class _Builder:
    """Collects the flat arrays tree by tree."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[Any]] = {
            name: []
            for name in ("feature", "threshold", "kind", "default_left", "words", "words_end", "slot",
                         "left", "right")
        }  # fmt: skip
        self.cat_words: list[int] = []
        self.tree_nodes, self.tree_leaves = [0], [0]
        self.leaf_depth: list[int] = []
        self.leaf_features: list[int] = []
        self.leaf_start: list[int] = []
        self.table_start: list[int] = []
        self.tables: list[np.ndarray] = []
        self.table_size = 0
        self.bias = 0.0

    def add_tree(self, tree: dict[str, str]) -> bool:
        """Add one tree; False when it is one the tables cannot hold."""
        n_leaves = int(tree["num_leaves"])
        value = _numbers(tree, "leaf_value", np.float64)
        if int(tree.get("is_linear", "0") or 0):
            return False
        if n_leaves <= 1:  # a constant tree: only the expected value
            self.bias += float(value[0]) if value.size else 0.0
            self.tree_nodes.append(self.tree_nodes[-1])
            self.tree_leaves.append(self.tree_leaves[-1])
            return True
        feature = _numbers(tree, "split_feature", np.int64)
        threshold = _numbers(tree, "threshold", np.float64)
        decision = _numbers(tree, "decision_type", np.int64)
        left = _numbers(tree, "left_child", np.int64)
        right = _numbers(tree, "right_child", np.int64)
        leaf_count = _numbers(tree, "leaf_count", np.float64)
        internal_count = _numbers(tree, "internal_count", np.float64)
        bounds = _numbers(tree, "cat_boundaries", np.int64)
        first_word = len(self.cat_words)
        self.cat_words.extend(_numbers(tree, "cat_threshold", np.uint32).tolist())

        def count(child: int) -> float:
            return float(internal_count[child] if child >= 0 else leaf_count[~child])

        slot = np.zeros(n_leaves - 1, dtype=np.int64)
        leaf_path: dict[int, list[tuple[int, float]]] = {}  # leaf -> (feature, share) along its path
        stack: list[tuple[int, dict[int, int], list[tuple[int, float]]]] = [(0, {}, [])]
        while stack:  # parents before children, so each node knows its path's distinct features
            node, seen, path = stack.pop()
            f = int(feature[node])
            if f not in seen:
                seen = {**seen, f: len(seen)}
            slot[node] = seen[f]
            for child in (int(left[node]), int(right[node])):
                step = [*path, (f, count(child) / count(node))]
                if child < 0:
                    leaf_path[~child] = step
                else:
                    stack.append((child, seen, step))
        for k in range(n_leaves - 1):
            categorical = bool(decision[k] & 1)
            self.nodes["feature"].append(int(feature[k]))
            self.nodes["threshold"].append(float(threshold[k]))
            self.nodes["kind"].append(_CATEGORICAL if categorical else int((decision[k] >> 2) & 3))
            self.nodes["default_left"].append(bool(decision[k] & 2))
            index = int(threshold[k]) if categorical else 0
            self.nodes["words"].append(first_word + int(bounds[index]) if categorical else 0)
            self.nodes["words_end"].append(first_word + int(bounds[index + 1]) if categorical else 0)
            self.nodes["slot"].append(int(slot[k]))
            self.nodes["left"].append(int(left[k]))
            self.nodes["right"].append(int(right[k]))
        root = count(0)
        for leaf in range(n_leaves):
            shares: dict[int, float] = {}
            for f, share in leaf_path[leaf]:
                shares[f] = shares.get(f, 1.0) * share
            d = len(shares)
            size = (1 << d) * d
            if d > MAX_PATH_FEATURES or self.table_size + size > MAX_TABLE_SIZE:
                return False
            self.bias += float(leaf_count[leaf]) / root * float(value[leaf])  # Tree::ExpectedValue
            self.leaf_start.append(len(self.leaf_features))
            self.leaf_features.extend(shares)  # insertion order: the slot order
            self.leaf_depth.append(d)
            self.table_start.append(self.table_size)
            self.tables.append(_leaf_table(float(value[leaf]), np.array(list(shares.values())), d))
            self.table_size += size
        self.tree_nodes.append(self.tree_nodes[-1] + n_leaves - 1)
        self.tree_leaves.append(self.tree_leaves[-1] + n_leaves)
        return True

    def tables_for(self, n_features: int) -> LeafTables:
        def ints(values: list[Any]) -> np.ndarray:
            return np.asarray(values, dtype=np.int64)

        nodes = self.nodes
        return LeafTables(
            n_features=n_features,
            tree_nodes=ints(self.tree_nodes),
            tree_leaves=ints(self.tree_leaves),
            node_feature=ints(nodes["feature"]),
            node_threshold=np.asarray(nodes["threshold"], dtype=np.float64),
            node_kind=ints(nodes["kind"]),
            node_default_left=np.asarray(nodes["default_left"], dtype=np.bool_),
            node_words=ints(nodes["words"]),
            node_words_end=ints(nodes["words_end"]),
            cat_words=np.asarray(self.cat_words, dtype=np.uint32),
            node_slot=ints(nodes["slot"]),
            node_left=ints(nodes["left"]),
            node_right=ints(nodes["right"]),
            leaf_depth=ints(self.leaf_depth),
            leaf_features=ints(self.leaf_features),
            leaf_start=ints(self.leaf_start),
            table_start=ints(self.table_start),
            table=np.concatenate(self.tables) if self.tables else np.zeros(0),
            bias=self.bias,
        )


def _build(model_text: str, n_features: int) -> LeafTables | None:
    """The tables of a LightGBM model string, or None (several outputs per iteration, or too large)."""
    header, trees = _tree_blocks(model_text)
    if int(header.get("num_tree_per_iteration", "1") or 1) != 1:
        return None
    if int(header.get("max_feature_idx", "-1") or -1) >= n_features:
        return None
    builder = _Builder()
    for tree in trees:
        if not builder.add_tree(tree):
            return None
    return builder.tables_for(n_features)


# ---- kernels --------------------------------------------------------------------------------------


def _compiled(**options: Any) -> Any:
    """``numba.njit`` with the machine code cached on disk, or without the cache where none can be kept.

    Numba refuses ``cache=True`` when neither the package's folder nor a user cache folder is writable
    (a read-only install under a user without a home, as on some Spark executors); the kernels then
    compile in each process (about 1.5 s) instead of failing the import.
    """

    def decorate(func: Any) -> Any:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(func)

    return decorate


@_compiled()
def _leaf_table(value: float, zero: np.ndarray, d: int) -> np.ndarray:  # pragma: no cover - compiled
    """A leaf's contributions for each pattern of followed features: (2^d x d) numbers, row-major."""
    weight = np.empty(d)
    for k in range(d):  # k! (d - k - 1)! / d!
        weight[k] = math.exp(math.lgamma(k + 1) + math.lgamma(d - k) - math.lgamma(d + 1))
    out = np.empty((1 << d) * d)
    poly = np.empty(d + 1)
    for pattern in range(1 << d):
        for i in range(d):
            poly[:] = 0.0
            poly[0] = 1.0
            size = 1
            for j in range(d):
                if j == i:
                    continue
                one = (pattern >> j) & 1  # poly *= (z_j + o_j t)
                for k in range(size, 0, -1):
                    poly[k] = poly[k] * zero[j] + poly[k - 1] * one
                poly[0] = poly[0] * zero[j]
                size += 1
            total = 0.0
            for k in range(d):
                total += weight[k] * poly[k]
            out[pattern * d + i] = value * (((pattern >> i) & 1) - zero[i]) * total
    return out


@_compiled()
def _category_left(
    x: float, k: int, words: np.ndarray, words_end: np.ndarray, cat_words: np.ndarray
) -> bool:  # pragma: no cover - compiled
    """LightGBM's categorical decision: whether category `x` is in node k's set (NaN, negative: no)."""
    if np.isnan(x) or x >= 2147483648.0 or x <= -2147483649.0:  # C's cast makes these negative
        return False
    code = int(x)  # toward zero, as C's cast: -0.5 is category 0
    if code < 0:
        return False
    word = words[k] + code // 32
    if word >= words_end[k]:
        return False
    return (cat_words[word] >> np.uint32(code % 32)) & np.uint32(1) != 0


@_compiled(nogil=True)
def _rows(
    lo: int,
    hi: int,
    X: np.ndarray,
    out: np.ndarray,
    tree_nodes: np.ndarray,
    tree_leaves: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    kind: np.ndarray,
    default_left: np.ndarray,
    words: np.ndarray,
    words_end: np.ndarray,
    cat_words: np.ndarray,
    slot: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    leaf_depth: np.ndarray,
    leaf_features: np.ndarray,
    leaf_start: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add the contributions of rows lo:hi to `out`, tree by tree.

    A node passes its pattern (bit s set: the row follows every split so far on the path's s-th
    feature) to both children, clearing its own feature's bit on the side the row does not take; a
    leaf's pattern picks the row of its table.
    """
    widest = 1
    for t in range(tree_nodes.shape[0] - 1):
        widest = max(widest, tree_nodes[t + 1] - tree_nodes[t] + 1)
    node_pattern = np.empty(widest, dtype=np.int64)
    leaf_pattern = np.empty(widest, dtype=np.int64)
    for r in range(lo, hi):
        row = out[r]
        for t in range(tree_nodes.shape[0] - 1):
            first = tree_nodes[t]
            node_pattern[0] = -1  # every bit set
            for k in range(first, tree_nodes[t + 1]):
                pattern = node_pattern[k - first]
                bit = np.int64(1) << slot[k]
                # LightGBM's decision (Tree::Decision), written out here: a call per node with the
                # arrays as arguments cost more than the rest of the loop
                x = X[r, feature[k]]
                node = kind[k]
                if abs(x) <= _ZERO:  # LightGBM drops such inputs: they read as 0
                    x = 0.0
                if node == _CATEGORICAL:
                    goes_left = _category_left(x, k, words, words_end, cat_words)
                elif node == _MISSING_NAN and x != x:
                    goes_left = default_left[k]
                else:
                    if x != x:  # NaN where NaN is not the missing type reads as 0
                        x = 0.0
                    goes_left = default_left[k] if node == _MISSING_ZERO and x == 0.0 else x <= threshold[k]
                if goes_left:
                    to_left, to_right = pattern, pattern & ~bit
                else:
                    to_left, to_right = pattern & ~bit, pattern
                child = left[k]
                if child >= 0:
                    node_pattern[child] = to_left
                else:
                    leaf_pattern[~child] = to_left
                child = right[k]
                if child >= 0:
                    node_pattern[child] = to_right
                else:
                    leaf_pattern[~child] = to_right
            first_leaf = tree_leaves[t]
            for leaf in range(first_leaf, tree_leaves[t + 1]):
                d = leaf_depth[leaf]
                base = table_start[leaf] + (leaf_pattern[leaf - first_leaf] & ((1 << d) - 1)) * d
                start = leaf_start[leaf]
                for s in range(d):
                    row[leaf_features[start + s]] += table[base + s]
