"""Exact chrF++ (sacrebleu ``CHRF(word_order=2)``) and a vectorised retrieval index.

Direction of the metric: the incoming chat message is the *hypothesis* and the
WVS statement is the *reference*.  The product ranks many statements against
one user message, and chrF++ is asymmetric: beta=2 weights recall twice as much
as precision, so with the statement as reference a statement scores high when
its n-grams are covered by the message.  This is the setup of Choenni &
Shutova (2024), where the test probe is the query.

``chrf_pp`` is a faithful port of sacrebleu 2.x (``metrics/chrf.py`` and
``metrics/helpers.py``) so it can be used without importing sacrebleu; the
floating point operations are performed in the same order so scores are
bit-identical.  ``ChrfIndex`` computes the same numbers for many references at
once from sparse n-gram count matrices.
"""

from __future__ import annotations

import threading
from collections import Counter
from functools import lru_cache
from itertools import chain, count
from typing import TYPE_CHECKING, List, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from ..data.profile import ValueProfile

__all__ = ["chrf_pp", "ChrfIndex", "shared_index", "profile_scores"]

CHAR_ORDER = 6
WORD_ORDER = 2
N_ORDERS = CHAR_ORDER + WORD_ORDER
BETA = 2
# Share of statements from which an n-gram column is stored dense (see ChrfIndex.__init__).
_DENSE_SHARE = 0.25
_PUNCTS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _words(sent: str) -> List[str]:
    """sacrebleu ``CHRF._remove_punctuation``: split off one leading or trailing punctuation."""
    tokenized = []
    for w in sent.split():
        if len(w) == 1:
            tokenized.append(w)
        elif w[-1] in _PUNCTS:  # '(hi)' -> '(hi', ')' exactly like sacrebleu (issue #124)
            tokenized += [w[:-1], w[-1]]
        elif w[0] in _PUNCTS:
            tokenized += [w[0], w[1:]]
        else:
            tokenized.append(w)
    return tokenized


def _ngram_counters(sent: str) -> List[Counter]:
    """Char 1..6-gram counters of the whitespace-free text, then word 1..2-gram counters."""
    line = "".join(sent.split())
    counters = [Counter([line[i:i + n] for i in range(len(line) - n + 1)])
                for n in range(1, CHAR_ORDER + 1)]
    words = _words(sent)
    counters += [Counter([" ".join(words[i:i + n]) for i in range(len(words) - n + 1)])
                 for n in range(1, WORD_ORDER + 1)]
    return counters


def _f_score(stats: List[int]) -> float:
    """sacrebleu ``CHRF._compute_f_score`` with eps_smoothing=False (effective order).

    sacrebleu's per-order eps terms only feed the eps_smoothing=True result, so they are left out.
    """
    factor = BETA ** 2
    avg_prec, avg_rec = 0.0, 0.0
    effective_order = 0
    for i in range(N_ORDERS):
        n_hyp, n_ref, n_match = stats[3 * i: 3 * i + 3]
        if n_hyp > 0 and n_ref > 0:
            avg_prec += n_match / n_hyp
            avg_rec += n_match / n_ref
            effective_order += 1
    if effective_order == 0:
        return 0.0
    avg_prec /= effective_order
    avg_rec /= effective_order
    if avg_prec + avg_rec:
        score = (1 + factor) * avg_prec * avg_rec
        score /= ((factor * avg_prec) + avg_rec)
        return 100 * score
    return 0.0


def chrf_pp(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF++ in [0, 100], equal to
    ``sacrebleu.metrics.CHRF(word_order=2).sentence_score(hypothesis, [reference]).score``.

    Call it as ``chrf_pp(user_message, statement)`` (see the module docstring).
    """
    stats: List[int] = []
    for hyp, ref in zip(_ngram_counters(hypothesis), _ngram_counters(reference)):
        match = sum(min(c, ref[g]) for g, c in hyp.items() if g in ref)
        # sacrebleu does not count hypothesis n-grams of an order the reference lacks
        stats += [sum(hyp.values()) if ref else 0, sum(ref.values()), match]
    return _f_score(stats)


def _rank(keys: np.ndarray, rows: np.ndarray):
    """Dense ids of ``keys`` plus CSC triplets (column, row, count) of the (key, row) pairs.

    Sorting keys with their position packed into the low bits is a much faster
    stable argsort than ``np.argsort(kind="stable")``; positions follow the
    statement order, so within one column the rows come out sorted and equal
    (key, row) pairs are adjacent, ready to be run-length counted.
    """
    m = len(keys)
    if m == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty, empty
    bits = (m - 1).bit_length() or 1
    if int(keys.max()) < 1 << (62 - bits):
        packed = np.sort((keys << bits) | np.arange(m))
        order, sorted_keys = packed & ((1 << bits) - 1), packed >> bits
    else:
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
    new_key = np.empty(m, bool)
    new_key[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new_key[1:])
    rank = np.cumsum(new_key) - 1
    ids = np.empty(m, np.int64)
    ids[order] = rank
    sorted_rows = rows[order]
    new_pair = new_key.copy()
    new_pair[1:] |= sorted_rows[1:] != sorted_rows[:-1]
    run = np.flatnonzero(new_pair)
    run_len = np.diff(np.append(run, m))
    return ids, sorted_keys[new_key], rank[run], sorted_rows[run], run_len


def _count_ngrams(sym: np.ndarray, rows: np.ndarray, remaining: np.ndarray, radix: int, max_order: int):
    """Yield, per order 1..max_order, sorted n-gram keys and CSC triplets over all statements.

    ``sym`` holds the symbols (char or word ids) of all statements back to
    back, ``remaining[p]`` how many symbols of its statement start at p.  An
    n-gram is keyed by ``id of its (n-1)-gram prefix * radix + last symbol``,
    which stays small (no overflow for any order) and is recomputed the same
    way for a query.
    """
    prefix = np.zeros(len(sym), np.int64)
    for n in range(1, max_order + 1):
        start = np.flatnonzero(remaining >= n)
        ids, keys, col, row, cnt = _rank(prefix[start] * radix + sym[start + n - 1], rows[start])
        prefix[start] = ids
        yield keys, col, row, cnt


def _lookup(sym: np.ndarray, radix: int, key_tables: List[np.ndarray], col_base) -> List[np.ndarray]:
    """Query side of ``_count_ngrams``: per order, the global column of each n-gram or -1.

    Unknown symbols are ``radix - 1`` (never indexed) and unknown prefixes -1
    (negative keys), so an unknown part can never produce a key in the table.
    """
    prefix = np.zeros(len(sym), np.int64)
    out = []
    for n, (table, base) in enumerate(zip(key_tables, col_base), 1):
        keys = prefix[: max(len(sym) - n + 1, 0)] * radix + sym[n - 1:]
        pos = np.minimum(np.searchsorted(table, keys), len(table) - 1)
        found = table[pos] == keys if len(table) else np.zeros(len(keys), bool)
        prefix = np.where(found, pos, -1)
        out.append(np.where(found, pos + base, -1))
    return out


class ChrfIndex:
    """chrF++ of one query (hypothesis) against fixed statements (references), vectorised.

    The reference side is one count matrix with a column per distinct n-gram
    (orders 1-6 chars, 1-2 words, each order a contiguous block of columns)
    and a row per (order, statement): row ``o * n + i``.  Stacking the orders
    this way lets one gather over the query's columns and one ``bincount``
    produce the match counts of every order for every statement.  It is kept
    as raw CSC arrays (``count_matrix()`` gives the scipy view), except for
    columns common enough to be cheaper as dense rows.  N-grams are identified
    by integer keys (see ``_count_ngrams``) rather than strings, which keeps
    building 100k statements to seconds.
    """

    def __init__(self, statements: Sequence[str]):
        self._n = n = len(statements)
        stripped = ["".join(s.split()) for s in statements]
        words = [_words(s) for s in statements]
        char_len = np.fromiter(map(len, stripped), np.int64, n)
        word_len = np.fromiter(map(len, words), np.int64, n)

        lens = [char_len - k for k in range(CHAR_ORDER)] + [word_len - k for k in range(WORD_ORDER)]
        n_ref = np.maximum(np.stack(lens), 0).astype(np.float64)
        # Orders without reference n-grams have zero matches: dividing by 1 adds exactly 0.
        self._n_ref = np.where(n_ref > 0, n_ref, 1.0)
        self._ref_char_orders = np.minimum(char_len, CHAR_ORDER)
        self._ref_word_orders = np.minimum(word_len, WORD_ORDER)

        # One utf-32 unit per code point, exactly Python's str indexing.
        cps = np.frombuffer("".join(stripped).encode("utf-32-le", "surrogatepass"), np.uint32)
        self._alphabet = np.unique(cps)
        char_ids = np.searchsorted(self._alphabet, cps).astype(np.int64)
        flat_words = [w for ws in words for w in ws]
        self._word_ids = dict(zip(dict.fromkeys(flat_words), count()))
        word_ids = np.fromiter(map(self._word_ids.__getitem__, flat_words), np.int64, len(flat_words))

        def per_symbol(seq_len):
            rows = np.repeat(np.arange(n), seq_len)
            remaining = np.repeat(np.cumsum(seq_len), seq_len) - np.arange(len(rows))
            return rows, remaining

        orders = chain(_count_ngrams(char_ids, *per_symbol(char_len), len(self._alphabet) + 1, CHAR_ORDER),
                       _count_ngrams(word_ids, *per_symbol(word_len), len(self._word_ids) + 1, WORD_ORDER))
        # Every n-gram occurrence is at most one stored entry: fill preallocated
        # arrays and shrink once instead of concatenating per-order pieces (peak memory).
        n_grams = int(n_ref.sum())
        self._rows = np.empty(n_grams, np.int64)
        self._counts = np.empty(n_grams, np.float64)
        col_nnz, self._key_tables, dense, dense_cols, nnz = [], [], [], [], 0
        for o, (keys, col, row, cnt) in enumerate(orders):
            base = sum(map(len, self._key_tables))
            self._key_tables.append(keys)
            nnz_col = np.bincount(col, minlength=len(keys))
            # A column present in >= _DENSE_SHARE of the statements (common characters
            # and bigrams) is cheaper as a dense uint16 row: a query then scans 2 bytes
            # per statement instead of gathering and scattering 16-byte sparse entries.
            top = np.maximum.reduceat(cnt, np.cumsum(nnz_col) - nnz_col) if len(cnt) else nnz_col
            is_dense = (nnz_col >= _DENSE_SHARE * n) & (top <= 0xFFFF)
            to_dense = is_dense[col]
            block = np.zeros((int(is_dense.sum()), n), np.uint16)
            block[(np.cumsum(is_dense) - 1)[col[to_dense]], row[to_dense]] = cnt[to_dense]
            dense.append(block)
            dense_cols.append(np.flatnonzero(is_dense) + base)
            nnz_col[is_dense] = 0
            col_nnz.append(nnz_col)
            to_sparse = ~to_dense
            m = int(to_sparse.sum())
            np.add(row[to_sparse], o * n, out=self._rows[nnz:nnz + m])
            self._counts[nnz:nnz + m] = cnt[to_sparse]
            nnz += m
        self._rows.resize(nnz, refcheck=False)
        self._counts.resize(nnz, refcheck=False)
        self._col_base = np.cumsum([0] + [len(k) for k in self._key_tables])
        self._indptr = np.zeros(self._col_base[-1] + 1, np.int64)
        np.cumsum(np.concatenate(col_nnz), out=self._indptr[1:])
        self._dense = np.concatenate(dense)
        self._dense_cols = np.concatenate(dense_cols)
        self._dense_order = np.repeat(np.arange(N_ORDERS), [len(c) for c in dense_cols])

    def __len__(self) -> int:
        return self._n

    def count_matrix(self) -> sp.csc_matrix:
        """All reference n-gram counts as one scipy CSC matrix, row ``order * n + statement``.

        For inspection only; queries read the arrays behind it directly.
        """
        shape = (N_ORDERS * self._n, len(self._indptr) - 1)
        dense_row, stmt = np.nonzero(self._dense)
        dense = sp.csc_matrix((self._dense[dense_row, stmt].astype(np.float64),
                               (self._dense_order[dense_row] * self._n + stmt, self._dense_cols[dense_row])),
                              shape=shape)
        return (sp.csc_matrix((self._counts, self._rows, self._indptr), shape=shape) + dense).tocsc()

    def _query_columns(self, query: str):
        """Distinct known query n-gram columns, their query counts, and n_hyp per order."""
        line = "".join(query.split())
        cps = np.frombuffer(line.encode("utf-32-le", "surrogatepass"), np.uint32)
        n_chars = len(self._alphabet)
        sym = np.searchsorted(self._alphabet, cps)
        if n_chars:
            sym[self._alphabet[np.minimum(sym, n_chars - 1)] != cps] = n_chars
        else:
            sym[:] = n_chars
        n_words = len(self._word_ids)
        wsym = np.array([self._word_ids.get(w, n_words) for w in _words(query)], np.int64)
        cols = (_lookup(sym, n_chars + 1, self._key_tables[:CHAR_ORDER], self._col_base[:CHAR_ORDER])
                + _lookup(wsym, n_words + 1, self._key_tables[CHAR_ORDER:], self._col_base[CHAR_ORDER:]))
        n_hyp = np.array([len(c) for c in cols], np.float64)
        cols = np.concatenate(cols)
        cols, q = np.unique(cols[cols >= 0], return_counts=True)
        return cols, q.astype(np.float64), n_hyp

    def scores(self, query: str) -> np.ndarray:
        """chrF++(query, statement) for every statement, as a float64 array."""
        n = self._n
        cols, q, n_hyp = self._query_columns(query)
        start, stop = self._indptr[cols], self._indptr[cols + 1]
        sparse = stop > start  # dense columns have no sparse entries
        start, stop, q_sparse = start[sparse], stop[sparse], q[sparse]
        length = stop - start
        total = int(length.sum())
        if total > 64 * len(start):
            # Long columns (large index): slicing copies each once, cheaper than an index array.
            parts = [slice(a, b) for a, b in zip(start.tolist(), stop.tolist())]
            rows = np.concatenate([self._rows[p] for p in parts])
            counts = np.concatenate([self._counts[p] for p in parts])
        else:
            # Short columns: one fancy-index gather beats a Python loop over them.
            idx = np.repeat(start - (np.cumsum(length) - length), length) + np.arange(total)
            rows, counts = self._rows[idx], self._counts[idx]
        hits = np.minimum(counts, np.repeat(q_sparse, length))
        matches = np.bincount(rows, weights=hits, minlength=N_ORDERS * n).reshape(N_ORDERS, n)

        pos = np.minimum(np.searchsorted(self._dense_cols, cols), max(len(self._dense_cols) - 1, 0))
        in_dense = self._dense_cols[pos] == cols if len(self._dense_cols) else np.zeros(len(cols), bool)
        if in_dense.any():
            pos, q_dense = pos[in_dense], np.minimum(q[in_dense], 0xFFFF).astype(np.uint16)
            block = self._dense[pos]
            np.minimum(block, q_dense[:, None], out=block)
            order = self._dense_order[pos]
            cut = np.flatnonzero(np.diff(order)) + 1
            for a, b in zip([0, *cut.tolist()], [*cut.tolist(), len(order)]):
                matches[order[a]] += block[a:b].sum(axis=0, dtype=np.int32)

        # Same operations, in the same order, as sacrebleu's _compute_f_score.
        # Orders missing on either side contribute exactly 0 to the sums (0 matches / 1).
        prec = matches / np.where(n_hyp > 0, n_hyp, 1.0)[:, None]
        rec = matches / self._n_ref
        # Reducing over the leading axis adds order after order, like sacrebleu's loop.
        avg_prec = np.add.reduce(prec, axis=0)
        avg_rec = np.add.reduce(rec, axis=0)
        effective_order = (np.minimum(self._ref_char_orders, int(np.count_nonzero(n_hyp[:CHAR_ORDER])))
                           + np.minimum(self._ref_word_orders, int(np.count_nonzero(n_hyp[CHAR_ORDER:]))))
        # effective order 0 means all sums are 0; sacrebleu then scores 0, as does 0 / 1.
        effective_order = np.maximum(effective_order, 1)
        avg_prec /= effective_order
        avg_rec /= effective_order
        factor = BETA ** 2
        score = (1 + factor) * avg_prec * avg_rec
        denom = (factor * avg_prec) + avg_rec
        score /= np.where(denom > 0, denom, 1.0)
        return 100 * score

    def top_k(self, query: str, k: int) -> List[Tuple[int, float]]:
        """The ``k`` best ``(statement index, score)`` pairs, best first, ties by lower index."""
        s = self.scores(query)
        k = max(0, min(k, len(s)))
        if k == 0:
            return []
        if k < len(s):
            # Partition instead of a full sort: only the k-th best value is needed exactly.
            kth = np.partition(s, len(s) - k)[len(s) - k]
            above = np.flatnonzero(s > kth)
            cand = np.concatenate([above, np.flatnonzero(s == kth)[: k - len(above)]])
        else:
            cand = np.arange(len(s))
        best = cand[np.lexsort((cand, -s[cand]))]
        return [(int(i), float(s[i])) for i in best]


_index_lock = threading.Lock()


@lru_cache(maxsize=64)
def _index(keys: tuple[str, ...]) -> ChrfIndex:
    return ChrfIndex(list(keys))


def shared_index(keys: tuple[str, ...]) -> ChrfIndex:
    """One chrF++ index per set of keys: every country's profile in a language has the same keys
    (the probe templates), so they share one index. Built once even when threads ask at once."""
    with _index_lock:
        return _index(keys)


def profile_scores(profile: "ValueProfile", text: str) -> np.ndarray:
    """chrF++ of ``text`` (the hypothesis) against every statement's key of ``profile``, in statement order."""
    if not profile.shared_keys:
        return shared_index(tuple(s.key for s in profile.statements)).scores(text)
    return shared_index(profile.shared_keys).scores(text)[np.asarray(profile.shared_rows, dtype=np.intp)]
