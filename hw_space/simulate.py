"""Cycle-level simulation of the stream schedule of a dataflow design, and FIFO depths from it.

Every kernel the HLS writer emits (hls_templates/kernels.h.j2) is one pipelined loop with II=1: one
iteration per cycle unless it is blocked, at most one read and one write per iteration. Which
iterations read and which write follows from the loop structure alone (the idea of FINN's
characteristic functions, FINN PR #1185); each hardware kind gives them per frame as two boolean
arrays (HwKind.schedule over hw_space.schedules, reached by `kernel_schedule`). The kernels form a
DAG: every FIFO is an edge (producer kernel, consumer kernel, depth); a fork is a kernel with
several output FIFOs (DuplicateStreams), a join one with several input FIFOs (AddStreams); a chain
is the DAG with edges (k, k + 1). `run_graph` plays it with bounded FIFOs, frame after frame:

* an iteration that reads takes one word from EVERY input FIFO and needs each of them non-empty at
  the start of the cycle; one that writes puts one word into EVERY output FIFO and needs each of
  them below its depth at the start of the cycle; FIFO updates apply at the end of the cycle (a
  word written in cycle t is read in t + 1 at the earliest; depth 2 sustains a word per cycle,
  depth 1 one every other cycle);
* each kernel runs its next iteration in the first cycle where all of that holds (no pipeline
  latency inside a kernel) and restarts its loop for the next frame at once;
* the source (the DMA feeding the input adapter, the one kernel without input FIFOs) always has
  data, unless paced at one frame per `pace` cycles; the sink (the DMA taking the output of the one
  kernel without output FIFOs) always accepts.

The simulation is exact for these rules but does not step cycle by cycle. An iteration that neither
reads nor writes always proceeds, so only reading or writing iterations are events, and the cycle of
an event is max(previous event + iterations in between, max over its input FIFOs of the producer's
write of the word + 1, max over its output FIFOs of the consumer's read that freed the slot + 1):
the first cycle in which the cycle-by-cycle rules let it run. Events are resolved in dependency
order (a kernel advances while the words and free slots it needs are known), so the cost is
proportional to the words a design moves, not to its cycles.

`size_fifos` picks the depths. (1) The graph paced at the analytical II with unbounded FIFOs (a
vectorized max-plus scan in topological order) gives the occupancy each FIFO reaches when its
producer writes; depth = that + 1 (at least 2) lets that very schedule run with bounded FIFOs, so
the greedy bounded run can only be earlier. For a skip FIFO (a fork's output that bypasses a
branch to a join) that occupancy is the words the fork writes while the branch fills: the
branch's latency in words. (2) A bounded run with the source at full speed checks the depths (no
deadlock, every frame interval within 1 % of the analytical II). (3) The producer of such a run
often only runs ahead of a slower consumer, so the depths are bisected, all at once, over the
depths where the cost of the FIFO changes (registers, SRL, BRAM18 steps): a probe that keeps the
frame interval keeps the lower halves, one that does not blames the FIFOs whose full slots lie on
its critical path (a probe that deadlocks: the full FIFOs into a join starved on another input).
"""

from __future__ import annotations

import heapq
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hw_space.boards import Board
from hw_space.design import Design
from hw_space.errors import CodesignError
from hw_space.layers import Fifo, Role
from hw_space.model import BatchResult, CostModel
from hw_space.schedules import gearbox_flags, max_pool_axis_flags, mvau_flags, sliding_window_flags

DEFAULT_FRAMES = 3
MIN_DEPTH = 2  # the smallest depth that sustains one word per cycle (Vitis HLS's default stream depth)
II_TOLERANCE = 0.01  # the sized depths must reach the analytical II within this fraction
SHRINK_PROBES = 24  # bounded simulations the shrinking step of size_fifos may run

READ, WRITE = 1, 2


# ---------------------------------------------------------------- per-kernel schedules

@dataclass(frozen=True)
class KernelSchedule:
    """The (reads, writes) flags of every iteration of one frame of a kernel's loop."""

    name: str
    kind: str
    reads: np.ndarray  # bool (iterations,)
    writes: np.ndarray  # bool (iterations,)

    @property
    def iterations(self) -> int:
        return len(self.reads)

    @property
    def words_in(self) -> int:
        return int(np.count_nonzero(self.reads))

    @property
    def words_out(self) -> int:
        return int(np.count_nonzero(self.writes))


def _at(value: Any, index: int = 0) -> int:
    """Entry `index` of a per-design array (or the scalar itself)."""
    a = np.asarray(value).reshape(-1)
    return int(a[index] if a.size > 1 else a[0])


def kernel_schedule(stage, index: int = 0) -> KernelSchedule:
    """The per-frame schedule of one kernel stage of a BatchResult (design `index` of the batch):
    the stage's hardware kind replays its loop (HwKind.schedule, hw_space.schedules)."""
    if stage.op is None or stage.op.role is not Role.KERNEL:
        raise ValueError(f"{stage.name}: stage kind {stage.kind!r} is not a stream kernel")
    d = {key: (v if isinstance(v, str) else _at(v, index)) for key, v in stage.detail.items()}
    return KernelSchedule(stage.name, stage.kind, *stage.op.schedule(d, _at(stage.cycles, index)))


# ---------------------------------------------------------------- the graph

Edge = tuple[int, int]  # (producer kernel, consumer kernel) of one FIFO


def chain_edges(n_kernels: int) -> list[Edge]:
    """The FIFOs of a chain: FIFO i between kernels i and i + 1."""
    return [(k, k + 1) for k in range(n_kernels - 1)]


def graph_ports(n_kernels: int, edges: list[Edge]) -> tuple[list[list[int]], list[list[int]]]:
    """(input FIFOs, output FIFOs) of every kernel, as FIFO indices. The kernels must be in
    topological order (producer before consumer), kernel 0 the only one without inputs (the
    source feeds it) and the last the only one without outputs (the sink takes it)."""
    ins: list[list[int]] = [[] for _ in range(n_kernels)]
    outs: list[list[int]] = [[] for _ in range(n_kernels)]
    for i, (p, c) in enumerate(edges):
        if not 0 <= p < c < n_kernels:
            raise ValueError(f"FIFO {i} from kernel {p} to {c}: the kernels must be in topological order (0..{n_kernels - 1})")
        outs[p].append(i)
        ins[c].append(i)
    no_in = [k for k in range(n_kernels) if not ins[k]]
    no_out = [k for k in range(n_kernels) if not outs[k]]
    if no_in != [0] or no_out != [n_kernels - 1]:
        raise ValueError(f"a dataflow graph has one input kernel (first) and one output kernel (last); kernels "
                         f"{no_in} read no FIFO and {no_out} write none")
    return ins, outs


@dataclass
class Chain:
    """The active kernels of one design in a topological order and the FIFOs between them. A chain
    of kernels has FIFO i between kernels i and i + 1; a DAG (forks, joins) lists its FIFOs as
    fifo_edges."""

    kernels: list[KernelSchedule]
    fifo_names: list[str]  # the active FIFOs in the model's stage order
    fifo_widths: list[int]
    fifo_stage: list[int]  # index of FIFO i among all FIFO stages of the BatchResult (active or not)
    n_fifo_stages: int
    model_depths: list[int]  # the depths the BatchResult priced, per active FIFO
    analytical_ii: int
    clock_mhz: float
    cycles: list[int]  # the model's cycles of each kernel
    fifo_edges: list[Edge] = field(default_factory=list)  # (producer, consumer) kernel of each FIFO; [] = a chain
    kernel_layers: list[str] = field(default_factory=list)  # the model stage's `layer` of each kernel

    def __post_init__(self) -> None:
        if not self.fifo_edges:
            self.fifo_edges = chain_edges(len(self.kernels))
        if len(self.fifo_edges) != len(self.fifo_names):
            raise ValueError(f"{len(self.fifo_names)} FIFOs, {len(self.fifo_edges)} FIFO edges")

    def stage_depths(self, depths: list[int]) -> list[int]:
        """Per-active-FIFO values -> one per FIFO stage of the model (inactive ones 0)."""
        out = [0] * self.n_fifo_stages
        for i, d in zip(self.fifo_stage, depths):
            out[i] = int(d)
        return out

    def active_depths(self, depths) -> list[int]:
        """One depth per FIFO stage of the model (its fifo_depths row) -> per active FIFO."""
        depths = [int(d) for d in np.asarray(depths).reshape(-1)]
        if len(depths) != self.n_fifo_stages:
            raise CodesignError(f"{len(depths)} FIFO depths given; the design has {self.n_fifo_stages} FIFO stages")
        out = [depths[i] for i in self.fifo_stage]
        bad = [name for name, d in zip(self.fifo_names, out) if d < 1]
        if bad:
            raise CodesignError(f"FIFO depth below 1 for {', '.join(bad)}; allowed: 1 word or more")
        return out


_TILED = "simulate: the tiled template runs layer after layer and has no stream FIFOs; use a dataflow design"


def _role(st) -> Role:
    return st.op.role if st.op is not None else Role.FIXED


def _stage_reads(stages: list) -> list[tuple[str, ...]]:
    """What each stage reads (StageResult.reads, by input port). A BatchResult whose stages name
    none is a chain in list order: each stream stage reads the one before it."""
    reads = [tuple(getattr(st, "reads", ()) or ()) for st in stages]
    if any(reads):
        return reads
    prev: tuple[str, ...] = ()
    for i, st in enumerate(stages):
        if _role(st) in (Role.KERNEL, Role.FIFO):
            reads[i], prev = prev, (st.name,)
    return reads


def _topological(n: int, edges: list[Edge]) -> list[int]:
    """A topological order of n nodes, the lowest index first among the ready ones (a list
    already in order stays as it is)."""
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for p, c in edges:
        succ[p].append(c)
        indeg[c] += 1
    ready = [k for k in range(n) if indeg[k] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for c in succ[k]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != n:
        raise ValueError("the stages' reads form a cycle; a dataflow design is a DAG")
    return order


def build_chain(result: BatchResult, index: int = 0) -> Chain:
    """The kernel graph of design `index` of a dataflow BatchResult: its active kernels and the
    active FIFOs between them, from each stage's `reads` (a FIFO reads the kernel that writes it,
    a kernel its input FIFOs; an inactive stage is a wire to what it reads)."""
    stages = result.stages
    if any(_role(st) is Role.SEQUENTIAL for st in stages):
        raise CodesignError(_TILED)
    reads = _stage_reads(stages)
    where = {st.name: i for i, st in enumerate(stages)}
    active = [bool(_at(st.active, index)) for st in stages]

    def driver(i: int, name: str) -> int:
        """The active stage behind `name`, read by stage i (inactive stages are wires)."""
        seen = {i}
        j = where.get(name)
        while j is not None and not active[j]:
            if len(reads[j]) != 1 or j in seen:
                raise ValueError(f"{stages[j].name}: an inactive stage must read exactly one stage")
            seen.add(j)
            j = where.get(reads[j][0])
        if j is None:
            raise ValueError(f"{stages[i].name} reads {name!r}, which is no stage of the design")
        return j

    kernel_at = [i for i, st in enumerate(stages) if active[i] and _role(st) is Role.KERNEL]
    fifo_stages = [i for i, st in enumerate(stages) if _role(st) is Role.FIFO]
    fifo_at = [i for i in fifo_stages if active[i]]
    k_of = {s: k for k, s in enumerate(kernel_at)}
    f_of = {s: f for f, s in enumerate(fifo_at)}
    producer: list[int] = []
    for s in fifo_at:
        if len(reads[s]) != 1:
            raise ValueError(f"{stages[s].name}: a FIFO reads exactly one kernel, not {len(reads[s])}")
        p = driver(s, reads[s][0])
        if p not in k_of:
            raise ValueError(f"{stages[s].name}: a FIFO that no kernel writes")
        producer.append(k_of[p])
    consumer: list[int | None] = [None] * len(fifo_at)
    for s in kernel_at:
        for name in reads[s]:
            j = driver(s, name)
            if j not in f_of:
                raise ValueError(f"{stages[s].name}: no FIFO between it and {stages[j].name}")
            if consumer[f_of[j]] is not None:
                raise ValueError(f"{stages[j].name}: a FIFO read by two kernels (a fork is a duplicating kernel)")
            consumer[f_of[j]] = k_of[s]
    unread = [stages[s].name for s, c in zip(fifo_at, consumer) if c is None]
    if unread:
        raise ValueError(f"{unread[0]}: a FIFO that no kernel reads")
    if len(kernel_at) < 2 or not fifo_at:
        raise ValueError("a dataflow design is a graph of kernels from the input to the output, a FIFO on each stream")
    order = _topological(len(kernel_at), list(zip(producer, consumer)))
    rank = {k: r for r, k in enumerate(order)}
    edges = [(rank[p], rank[c]) for p, c in zip(producer, consumer)]
    kst = [stages[kernel_at[k]] for k in order]
    kernels = [kernel_schedule(st, index) for st in kst]
    graph_ports(len(kernels), edges)
    for (p, c), s in zip(edges, fifo_at):
        a, b = kernels[p], kernels[c]
        if a.words_out != b.words_in:
            raise ValueError(f"{a.name} writes {a.words_out} words per frame into {stages[s].name}, {b.name} reads "
                             f"{b.words_in}")
    fifo_sts = [stages[s] for s in fifo_at]
    stage_no = {s: i for i, s in enumerate(fifo_stages)}
    return Chain(kernels, [st.name for st in fifo_sts], [_at(st.width, index) for st in fifo_sts],
                 [stage_no[s] for s in fifo_at], len(fifo_stages),
                 [_at(st.detail["depth"], index) for st in fifo_sts], _at(result.ii_cycles, index),
                 float(result.clock_mhz), [_at(st.cycles, index) for st in kst], edges, [st.layer for st in kst])


# ---------------------------------------------------------------- running the graph

@dataclass
class ChainRun:
    """What a run produced: the cycle of every read and write of every kernel (a reading iteration
    reads all its input FIFOs, a writing one writes all its output FIFOs)."""

    read_times: list  # per kernel, ascending cycles of its reads
    write_times: list  # per kernel, ascending cycles of its writes
    done: list[bool]  # the kernel ran all its iterations of all frames
    stall_read: list[int]  # cycles each kernel waited for an input word
    stall_write: list[int]  # cycles each kernel waited for a free slot
    frames: int
    events_done: list[int]  # reading or writing iterations each kernel ran
    pace: int | None = None
    edges: list[Edge] = field(default_factory=list)  # (producer, consumer) of each FIFO; [] = a chain

    def __post_init__(self) -> None:
        if not self.edges:
            self.edges = chain_edges(len(self.read_times))

    @property
    def deadlock(self) -> bool:
        return not all(self.done)


def _events(ks: KernelSchedule, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(iteration, kind) of every reading or writing iteration of `frames` frames back to back;
    iterations count from the first frame's first one, kind = READ | WRITE bits."""
    kind = ks.reads.astype(np.int64) * READ + ks.writes.astype(np.int64) * WRITE
    at = np.flatnonzero(kind)
    its = (np.arange(frames, dtype=np.int64)[:, None] * ks.iterations + at[None, :]).reshape(-1)
    return its, np.tile(kind[at], frames)


def _source(kernels: list[KernelSchedule], frames: int, pace: int | None) -> np.ndarray:
    """The source as a producer: the cycle 'before' the first in which each input word can be read
    (frame f's word j at cycle f * pace + j; unpaced: from cycle 0)."""
    rpf = kernels[0].words_in
    if pace is None:
        return np.full(frames * rpf, -1, dtype=np.int64)
    return ((np.arange(frames, dtype=np.int64)[:, None] * int(pace)) + np.arange(rpf)[None, :]).reshape(-1) - 1


def _merge_arrivals(dst: list[int], srcs: list[list[int]]) -> None:
    """Extend dst[j] = max over srcs of src[j] as far as every source is known (a join's word j is
    there once the last of its inputs has it)."""
    n = min(len(s) for s in srcs)
    if n > len(dst):
        dst.extend(map(max, *(s[len(dst):n] for s in srcs)))


def _merge_room(dst: list[int], outs: list[tuple[list[int], int]]) -> None:
    """Extend dst[j] = max over bounded output FIFOs (consumer reads c, depth d) of c[j + 1 - d]
    (-1 where write j + 1 finds that FIFO below its depth anyway), as far as all are known: a
    fork's write n waits for room in every output, so it acts as one FIFO of depth 1 whose slot
    n - 1 frees at dst[n - 1]."""
    n = min(len(c) + d for c, d in outs) - 1
    for j in range(len(dst), n):
        dst.append(max(c[j + 1 - d] if j + 1 >= d else -1 for c, d in outs))


def run_graph(kernels: list[KernelSchedule], edges: list[Edge], depths: list[int | None],
              frames: int = DEFAULT_FRAMES, pace: int | None = None) -> ChainRun:
    """Play `frames` frames through the kernel DAG. edges[i]: (producer, consumer) of FIFO i,
    depths[i] its depth (None: unbounded); kernels in topological order (graph_ports). pace: the
    source delivers frame f's word j at cycle f * pace + j (None: whenever asked). Deadlock (no
    kernel can move, frames left) ends the run with done False."""
    K = len(kernels)
    if len(depths) != len(edges):
        raise ValueError(f"{len(edges)} FIFOs need {len(edges)} depths, got {len(depths)}")
    if any(d is not None and d < 1 for d in depths):
        raise ValueError("FIFO depths must be 1 or more")
    ins, outs = graph_ports(K, edges)
    events = [_events(ks, frames) for ks in kernels]
    ev_it = [e[0].tolist() for e in events]
    ev_kind = [e[1].tolist() for e in events]
    D = [0 if d is None else int(d) for d in depths]  # 0: never full (the sink too)
    R: list[list[int]] = [[] for _ in range(K)]
    W: list[list[int]] = [[] for _ in range(K)]
    source = _source(kernels, frames, pace).tolist()
    producers = [[edges[i][0] for i in ins[k]] for k in range(K)]
    consumers = [[edges[i][1] for i in outs[k]] for k in range(K)]
    # per kernel: its events; the write times of the words it reads (the producer's, the source's,
    # or for a join the latest of its producers', merged as they come); the read times that free its
    # output slots and the output depth (one bounded output FIFO: its consumer's reads and depth; a
    # fork: the merged slots of all, depth 1; none bounded: depth 0, never full); its own read and
    # write times; the lists to merge (None: nothing to merge)
    static = []
    for k in range(K):
        Wp, merge_in = (source, None) if k == 0 else (W[producers[k][0]], None)
        if len(producers[k]) > 1:
            Wp, merge_in = [], [W[p] for p in producers[k]]
        bounded = [(R[edges[i][1]], D[i]) for i in outs[k] if D[i]]
        Rc, d, merge_out = [], 0, None  # the sink, or only unbounded outputs
        if len(bounded) == 1:
            (Rc, d), = bounded
        elif len(bounded) > 1:
            Rc, d, merge_out = [], 1, bounded
        static.append((ev_it[k], ev_kind[k], len(ev_it[k]), Wp, Rc, d, R[k], W[k], merge_in, merge_out))
    # and its state: next event, cycle and iteration of the last one, stall cycles
    state = [[0, -1, -1, 0, 0] for _ in range(K)]
    never = 1 << 62
    queued = [True] * K
    stack = list(range(K - 1, -1, -1))
    pop, push = stack.pop, stack.append
    while stack:
        k = pop()
        queued[k] = False
        its, kinds, M, Wp, Rc, d, Rk, Wk, merge_in, merge_out = static[k]
        st = state[k]
        m, lt, li, sr, sw = st
        if m >= M:
            continue
        if merge_in is not None:
            _merge_arrivals(Wp, merge_in)
        if merge_out is not None:
            _merge_room(Rc, merge_out)
        nr0 = nr = len(Rk)
        nw0 = nw = len(Wk)
        ra = len(Wp)  # words this kernel may read until a neighbour moves
        wa = len(Rc) + d if d else never  # words it may write until then
        while m < M:
            it = its[m]
            kd = kinds[m]
            t = lt + it - li
            if kd == 1:
                if nr >= ra:
                    break
                a = Wp[nr] + 1
                if a > t:
                    sr += a - t
                    t = a
                Rk.append(t)
                nr += 1
            elif kd == 2:
                if nw >= wa:
                    break
                if d and nw >= d:
                    a = Rc[nw - d] + 1
                    if a > t:
                        sw += a - t
                        t = a
                Wk.append(t)
                nw += 1
            else:
                if nr >= ra or nw >= wa:
                    break
                a = Wp[nr] + 1
                if a > t:
                    sr += a - t
                    t = a
                if d and nw >= d:
                    a = Rc[nw - d] + 1
                    if a > t:
                        sw += a - t
                        t = a
                Rk.append(t)
                Wk.append(t)
                nr += 1
                nw += 1
            lt = t
            li = it
            m += 1
        st[0], st[1], st[2], st[3], st[4] = m, lt, li, sr, sw
        if nr > nr0:
            for j in producers[k]:
                if not queued[j]:
                    queued[j] = True
                    push(j)
        if nw > nw0:
            for j in consumers[k]:
                if not queued[j]:
                    queued[j] = True
                    push(j)
    pos = [st[0] for st in state]
    done = [pos[k] >= len(ev_it[k]) for k in range(K)]
    return ChainRun(R, W, done, [st[3] for st in state], [st[4] for st in state], frames, pos, pace, list(edges))


def run_chain(kernels: list[KernelSchedule], depths: list[int | None], frames: int = DEFAULT_FRAMES,
              pace: int | None = None) -> ChainRun:
    """`run_graph` on a chain: depths[i] is the depth of the FIFO between kernels i and i + 1."""
    if len(depths) != len(kernels) - 1:
        raise ValueError(f"{len(kernels)} kernels need {len(kernels) - 1} FIFO depths, got {len(depths)}")
    return run_graph(kernels, chain_edges(len(kernels)), depths, frames, pace)


def run_unbounded(kernels: list[KernelSchedule], frames: int = DEFAULT_FRAMES, pace: int | None = None,
                  edges: list[Edge] | None = None) -> ChainRun:
    """`run_graph` with every FIFO unbounded, vectorized (edges None: a chain): nothing waits for a
    consumer, so a kernel's schedule follows from its producers' alone; in topological order, event
    m at cycle it_m + max(0, max over m' <= m of (arrival of the word read at m' - it_m')), where a
    word arrives when the last of the producers writes it."""
    edges = chain_edges(len(kernels)) if edges is None else list(edges)
    ins, _ = graph_ports(len(kernels), edges)
    R, W, stalls, n_events = [], [], [], []
    for k, ks in enumerate(kernels):
        arrival = _source(kernels, frames, pace) if k == 0 else \
            np.maximum.reduce([W[edges[i][0]] for i in ins[k]])
        its, kinds = _events(ks, frames)
        r, w = (kinds & READ) > 0, (kinds & WRITE) > 0
        a = np.zeros(len(its), dtype=np.int64)
        a[r] = arrival + 1 - its[r]
        t = its + np.maximum.accumulate(np.maximum(a, 0)) if len(its) else its
        R.append(t[r])
        W.append(t[w])
        stalls.append(int(t[-1] - its[-1]) if len(its) else 0)
        n_events.append(len(its))
    return ChainRun(R, W, [True] * len(kernels), stalls, [0] * len(kernels), frames, n_events, pace, edges)


# ---------------------------------------------------------------- reading a run

def fifo_occupancy(run: ChainRun, i: int) -> tuple[int, int]:
    """(most words FIFO i holds at the start of a cycle in which its producer writes, most words it
    holds at the end of any cycle) in a run."""
    p, c = run.edges[i]
    w = np.asarray(run.write_times[p], dtype=np.int64)
    r = np.asarray(run.read_times[c], dtype=np.int64)
    if len(w) == 0:
        return 0, 0
    idx = np.arange(len(w), dtype=np.int64)
    at_write = idx - np.searchsorted(r, w, side="left")
    held = idx + 1 - np.searchsorted(r, w, side="right")
    return int(at_write.max()), int(held.max())


def deadlock_fifos(run: ChainRun, depths: list[int | None]) -> list[int]:
    """In a run that ended in deadlock, the FIFOs whose depth closed the wait cycle: those at their
    depth whose consumer (a join) waits for a word on another, empty, input FIFO. Around any wait
    cycle a kernel blocked on a full output hands the wait on to its consumer, one starved on an
    empty input to its producer; where the cycle turns from the first to the second sits a join with
    a full and an empty input. FIFOs full only because everything behind them is blocked are not
    returned: making them deeper would not help."""
    ins: dict[int, list[int]] = {}
    for i, (_, c) in enumerate(run.edges):
        ins.setdefault(c, []).append(i)
    held = [len(run.write_times[p]) - len(run.read_times[c]) for p, c in run.edges]
    return [i for i, ((_, c), d) in enumerate(zip(run.edges, depths))
            if d and held[i] >= d and not run.done[c] and any(held[j] == 0 for j in ins[c] if j != i)]


@dataclass
class Timeline:
    """Per-event view of one kernel in a run: its cycle and the three lower bounds it obeyed."""

    t: np.ndarray
    seq: np.ndarray  # previous event + iterations in between
    data: np.ndarray  # the latest producer's write of the word read + 1 (-1: no read)
    room: np.ndarray  # the latest consumer's read that freed a slot + 1 (-1: no write into a full FIFO)
    ridx: np.ndarray  # read number of each event (-1: none)
    widx: np.ndarray  # write number of each event (-1: none)
    read_event: np.ndarray  # event index of each read
    write_event: np.ndarray  # event index of each write
    data_fifo: np.ndarray | None = None  # the input FIFO that set `data` (-1: the source or no read)
    room_fifo: np.ndarray | None = None  # the output FIFO that set `room` (-1: none)


def _latest(bounds: list[tuple[int, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise max over (FIFO, bound) pairs, with the FIFO of the first maximum (-1 if none)."""
    best = np.full(n, -1, dtype=np.int64)
    which = np.full(n, -1, dtype=np.int64)
    for i, b in bounds:
        later = b > best
        best[later] = b[later]
        which[later] = i
    return best, which


def timelines(kernels: list[KernelSchedule], run: ChainRun, depths: list[int | None]) -> list[Timeline]:
    """Every event's cycle in `run` and the bounds of the rule cycle = max(seq, data, room)."""
    ins, outs = graph_ports(len(kernels), run.edges)
    source = _source(kernels, run.frames, run.pace)
    out = []
    for k, ks in enumerate(kernels):
        its, kinds = _events(ks, run.frames)
        n = run.events_done[k]
        its, kinds = its[:n], kinds[:n]
        r, w = (kinds & READ) > 0, (kinds & WRITE) > 0
        ridx, widx = np.cumsum(r) - 1, np.cumsum(w) - 1
        reads = np.asarray(run.read_times[k], dtype=np.int64)
        writes = np.asarray(run.write_times[k], dtype=np.int64)
        t = np.zeros(n, dtype=np.int64)
        t[r] = reads[ridx[r]]
        t[~r] = writes[widx[~r]]
        seq = np.empty_like(t)
        if n:
            seq[0] = its[0]
            seq[1:] = t[:-1] + np.diff(its)
        producers = [(-1, source)] if k == 0 else \
            [(i, np.asarray(run.write_times[run.edges[i][0]], dtype=np.int64)) for i in ins[k]]
        data_bounds = []
        for i, prod in producers:
            b = np.full(n, -1, dtype=np.int64)
            b[r] = prod[ridx[r]] + 1
            data_bounds.append((i, b))
        data, data_fifo = _latest(data_bounds, n)
        room_bounds = []
        for i in outs[k]:
            d = depths[i]
            if d:
                cons = np.asarray(run.read_times[run.edges[i][1]], dtype=np.int64)
                full = w & (widx >= d)
                b = np.full(n, -1, dtype=np.int64)
                b[full] = cons[widx[full] - d] + 1
                room_bounds.append((i, b))
        room, room_fifo = _latest(room_bounds, n)
        out.append(Timeline(t, seq, data, room, np.where(r, ridx, -1), np.where(w, widx, -1), np.flatnonzero(r),
                            np.flatnonzero(w), data_fifo, room_fifo))
    return out


def critical_fifos(kernels: list[KernelSchedule], run: ChainRun, depths: list[int | None],
                   since: int = 0, max_steps: int = 1 << 21) -> dict[int, int]:
    """Walk back the critical path of the output's last write: from an event to the constraint that
    set its cycle (its kernel's latest stall before it, then the write of the input FIFO whose word
    came last, or the read that freed the slot of the output FIFO that had room last). Returns, for
    every FIFO whose full slot delayed an event of the path at cycle `since` or later, the cycles of
    delay it caused there."""
    tl = timelines(kernels, run, depths)
    stalled = [np.flatnonzero(x.t > x.seq).tolist() for x in tl]
    t_, seq_, data_ = [x.t.tolist() for x in tl], [x.seq.tolist() for x in tl], [x.data.tolist() for x in tl]
    ridx_, widx_ = [x.ridx.tolist() for x in tl], [x.widx.tolist() for x in tl]
    rev_, wev_ = [x.read_event.tolist() for x in tl], [x.write_event.tolist() for x in tl]
    dfifo_, rfifo_ = [x.data_fifo.tolist() for x in tl], [x.room_fifo.tolist() for x in tl]
    edges = run.edges
    delay: dict[int, int] = {}
    k = len(kernels) - 1
    m = len(t_[k]) - 1
    for _ in range(max_steps):
        j = bisect_right(stalled[k], m) - 1
        if j < 0:  # the kernel ran back to back from its first iteration
            break
        m = stalled[k][j]
        t = t_[k][m]
        if t < since:
            break
        if data_[k][m] == t:  # waited for a word
            i = dfifo_[k][m]
            if i < 0:  # from the source
                break
            p = edges[i][0]
            k, m = p, wev_[p][ridx_[k][m]]
        else:  # waited for room in an output FIFO
            i = rfifo_[k][m]
            delay[i] = delay.get(i, 0) + t - max(seq_[k][m], data_[k][m])
            c = edges[i][1]
            k, m = c, rev_[c][widx_[k][m] - int(depths[i])]
    return delay


# ---------------------------------------------------------------- results

@dataclass
class SimResult:
    """Simulated figures of one design. ii_cycles is the interval between the last two frames at the
    output; latency_cycles runs from the input's first read of frame 0 to the output's last write of
    frame 0, both cycles included. Both are None when a deadlock stopped the run first. depths and
    max_occupancy have one entry per FIFO stage of the model in stream order (inactive FIFOs 0);
    max_occupancy is the most words a FIFO held at the end of a cycle. fifo_edges names the kernels
    each active FIFO connects (producer, consumer)."""

    ii_cycles: int | None
    latency_cycles: int | None
    frames: int
    deadlock: bool
    depths: list[int]
    max_occupancy: list[int]
    analytical_ii: int
    clock_mhz: float
    fifos: list[dict[str, Any]] = field(default_factory=list)  # active FIFOs: name, width, depth, max_occupancy
    stalls: dict[str, dict[str, int]] = field(default_factory=dict)  # per kernel: cycles waiting to read / write
    frame_done: list[int] = field(default_factory=list)  # cycle of the output's last write of each frame
    elapsed_s: float = 0.0
    runs: int = 1  # bounded simulations behind this result (size_fifos: the probes)
    fifo_edges: list[tuple[str, str]] = field(default_factory=list)  # per active FIFO: (producer, consumer) kernel
    blocking: list[str] = field(default_factory=list)  # after a deadlock: the FIFOs that closed it (deadlock_fifos)

    @property
    def latency_us(self) -> float | None:
        return None if self.latency_cycles is None else self.latency_cycles / self.clock_mhz

    @property
    def ii_error(self) -> float | None:
        """(simulated - analytical) / analytical II."""
        return None if self.ii_cycles is None else (self.ii_cycles - self.analytical_ii) / max(self.analytical_ii, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"analytical_ii_cycles": self.analytical_ii, "ii_cycles": self.ii_cycles,
                "latency_cycles": self.latency_cycles, "latency_us": self.latency_us, "clock_mhz": self.clock_mhz,
                "deadlock": self.deadlock, "frames": self.frames, "fifos": self.fifos, "depths": self.depths,
                "max_occupancy": self.max_occupancy, "frame_done": self.frame_done, "stalls": self.stalls,
                "fifo_edges": [list(e) for e in self.fifo_edges], "blocking_fifos": self.blocking, "runs": self.runs,
                "elapsed_s": self.elapsed_s}


def _result(chain: Chain, run: ChainRun, depths: list[int], started: float) -> SimResult:
    out = run.write_times[-1]
    per_frame = chain.kernels[-1].words_out
    frame_done = [int(out[(f + 1) * per_frame - 1]) for f in range(run.frames) if (f + 1) * per_frame <= len(out)]
    complete = len(frame_done) == run.frames
    ii = frame_done[-1] - frame_done[-2] if complete and len(frame_done) >= 2 else None
    first_read = run.read_times[0][0] if len(run.read_times[0]) else None
    latency = frame_done[0] - int(first_read) + 1 if frame_done and first_read is not None else None
    held = [fifo_occupancy(run, i)[1] for i in range(len(depths))]
    fifos = [{"name": n, "width": w, "depth": int(d), "max_occupancy": o}
             for n, w, d, o in zip(chain.fifo_names, chain.fifo_widths, depths, held)]
    stalls = {ks.name: {"read": int(r), "write": int(w)}
              for ks, r, w in zip(chain.kernels, run.stall_read, run.stall_write)}
    names = [(chain.kernels[p].name, chain.kernels[c].name) for p, c in chain.fifo_edges]
    blocking = [chain.fifo_names[i] for i in deadlock_fifos(run, depths)] if run.deadlock else []
    return SimResult(ii, latency, run.frames, run.deadlock, chain.stage_depths(depths), chain.stage_depths(held),
                     chain.analytical_ii, chain.clock_mhz, fifos, stalls, frame_done, time.perf_counter() - started,
                     fifo_edges=names, blocking=blocking)


# ---------------------------------------------------------------- public API

def design_chain(design: Design, board: Board) -> Chain:
    """The kernel graph of a dataflow design on a board (CodesignError for a tiled or illegal design)."""
    if design.hardware.template != "dataflow":
        raise CodesignError(_TILED)
    result = CostModel(design.network, board, design.hardware.clock_mhz).evaluate_designs([design])
    illegal = [st.rule for st in result.stages if not bool(_at(st.legal)) and st.rule]
    if illegal:
        raise CodesignError(f"simulate: the folding is not legal: {illegal[0]}")
    return build_chain(result)


def _check_frames(frames: int) -> int:
    if int(frames) < 2:
        raise CodesignError(f"frames: {frames} is not allowed; allowed: 2 or more (the II is the interval of the last two)")
    return int(frames)


def simulate_chain(chain: Chain, depths: list[int], frames: int = DEFAULT_FRAMES) -> SimResult:
    """Simulate a kernel graph with one depth per active FIFO, the source at full speed."""
    return _probe(chain, list(depths), _check_frames(frames))[1]


def simulate(design: Design, board: Board, depths=None, frames: int = DEFAULT_FRAMES) -> SimResult:
    """Simulate `frames` frames of a dataflow design, the source at full speed. depths: one per FIFO
    stage of the model in stream order (CostModel.evaluate_dataflow's fifo_depths row; inactive ones
    are ignored); None: the depths the model prices by default."""
    chain = design_chain(design, board)
    return simulate_chain(chain, chain.model_depths if depths is None else chain.active_depths(depths), frames)


def _acceptable(res: SimResult, target: int) -> bool:
    """No deadlock, and no frame completes more than `target` cycles after the one before it."""
    if res.deadlock or len(res.frame_done) < 2:
        return False
    return max(b - a for a, b in zip(res.frame_done, res.frame_done[1:])) <= target


def _probe(chain: Chain, depths: list[int], frames: int) -> tuple[ChainRun, SimResult]:
    started = time.perf_counter()
    run = run_graph(chain.kernels, chain.fifo_edges, list(depths), frames)
    return run, _result(chain, run, list(depths), started)


def fifo_cost(width: int, depths) -> np.ndarray:
    """A scalar price of a FIFO of `width` bits at each depth, as the cost model prices it
    (hw_space.layers.Fifo): BRAM18 first, then LUT + FF / 2 (a slice has two flip-flops per LUT)."""
    depths = np.asarray(depths, dtype=np.int64)
    res = Fifo("fifo").resources(np.full(len(depths), width), depths)
    return np.asarray(res.BRAM18) * 2_000_000 + 2 * np.asarray(res.LUT) + np.asarray(res.FF)


def depth_levels(width: int, upper: int) -> list[int]:
    """The depths worth trying up to `upper`, ascending: those cheaper than every deeper one (a
    deeper FIFO for the same price or less is free slack). `upper` is always the last."""
    if upper <= MIN_DEPTH:
        return [upper]
    d = np.arange(MIN_DEPTH, upper + 1, dtype=np.int64)
    cost = fifo_cost(width, d)
    deeper = np.minimum.accumulate(cost[::-1])[::-1]  # cheapest price at this depth or deeper
    useful = np.append(cost[:-1] < deeper[1:], True)
    return d[useful].tolist()


def _shrink(chain: Chain, depths: list[int], res: SimResult, target: int, frames: int, max_probes: int,
            deadline: float | None) -> tuple[list[int], SimResult, int]:
    """Bisect every FIFO deeper than MIN_DEPTH over its price levels (depth_levels), all at once: a
    probe sets each open FIFO to the middle level of its interval; if every frame interval stays
    within `target`, each open FIFO keeps the lower half; if not, the FIFOs whose full slots delayed
    the critical path of the probe keep the upper half (a probe that deadlocks: the FIFOs full when
    it stopped with a join waiting on its other input, deadlock_fifos; where none did, the costliest
    open FIFO).
    `depths` reaches the target, and so does every vector that replaces it."""
    levels = {i: depth_levels(chain.fifo_widths[i], d) for i, d in enumerate(depths) if d > MIN_DEPTH}
    lo = {i: 0 for i in levels}
    hi = {i: len(v) - 1 for i, v in levels.items()}
    probes = 0
    while probes < max_probes and (deadline is None or time.perf_counter() < deadline):
        open_ = [i for i in levels if lo[i] < hi[i]]
        if not open_:
            break
        mid = {i: (lo[i] + hi[i]) // 2 for i in open_}
        trial = list(depths)
        for i in open_:
            trial[i] = levels[i][mid[i]]
        probe_run, probe = _probe(chain, trial, frames)
        probes += 1
        if _acceptable(probe, target):
            for i in open_:
                hi[i] = mid[i]
            depths, res = trial, probe
            continue
        culprits = deadlock_fifos(probe_run, trial) if probe_run.deadlock else critical_fifos(chain.kernels, probe_run, trial)
        blamed = [i for i in culprits if i in mid]
        if not blamed:
            blamed = [max(open_, key=lambda i: int(fifo_cost(chain.fifo_widths[i], [trial[i]])[0]))]
        for i in blamed:
            lo[i] = mid[i] + 1
    return depths, res, probes


def size_chain(chain: Chain, frames: int = DEFAULT_FRAMES, shrink: bool = True, max_probes: int = SHRINK_PROBES,
               budget_s: float | None = None) -> SimResult:
    """FIFO depths of a kernel graph (see size_fifos)."""
    started = time.perf_counter()
    frames = _check_frames(frames)
    ii = chain.analytical_ii
    paced = run_unbounded(chain.kernels, frames, pace=ii, edges=chain.fifo_edges)
    depths = [max(MIN_DEPTH, fifo_occupancy(paced, i)[0] + 1) for i in range(len(chain.fifo_names))]
    _, res = _probe(chain, depths, frames)
    runs = 1
    limit = int(ii * (1 + II_TOLERANCE))
    for _ in range(4):  # the paced schedule fits these depths; at full speed the kernels may want more
        if _acceptable(res, limit):
            break
        depths = [d if d <= MIN_DEPTH else 2 * d for d in depths]
        _, res = _probe(chain, depths, frames)
        runs += 1
    if shrink and _acceptable(res, limit):
        target = max(ii, max(b - a for a, b in zip(res.frame_done, res.frame_done[1:])))
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        depths, res, probes = _shrink(chain, depths, res, target, frames, max_probes, deadline)
        runs += probes
    res.runs = runs
    res.elapsed_s = time.perf_counter() - started
    return res


def size_fifos(design: Design, board: Board, frames: int = DEFAULT_FRAMES, shrink: bool = True,
               max_probes: int = SHRINK_PROBES, budget_s: float | None = None) -> SimResult:
    """Simulated FIFO depths of a dataflow design: deep enough for the analytical II (within 1 %,
    checked by a bounded run of `frames` frames with the source at full speed), then shrunk where a
    FIFO's price drops and no frame interval grows (at most max_probes more runs, and budget_s
    seconds if given; the result does not depend on the machine unless budget_s cuts it short).
    result.depths is a fifo_depths row for CostModel.evaluate_designs; result.ii_cycles and
    latency_cycles are simulated with those depths."""
    return size_chain(design_chain(design, board), frames, shrink, max_probes, budget_s)


def _branches(edges: list[tuple[str, str]]) -> bool:
    """Whether a kernel writes or reads more than one FIFO (the graph is not a chain)."""
    producers, consumers = [p for p, _ in edges], [c for _, c in edges]
    return len(set(producers)) < len(producers) or len(set(consumers)) < len(consumers)


def format_simulation(res: SimResult, title: str = "") -> str:
    """A human-readable report: II, latency, deadlock and the FIFO table."""
    lines = [title] if title else []
    ii = "deadlock" if res.ii_cycles is None else f"{res.ii_cycles:,} cycles"
    err = "" if res.ii_error is None else f" ({res.ii_error:+.2%})"
    lines.append(f"analytical II {res.analytical_ii:,} cycles; simulated II {ii}{err}, {res.frames} frames")
    if res.latency_cycles is None:
        lines.append("simulated latency: frame 0 never completed")
    else:
        lines.append(f"simulated latency {res.latency_cycles:,} cycles = {res.latency_us:,.1f} us at {res.clock_mhz:g} MHz")
    blocking = f" (full, while the join it feeds waits on another input: {', '.join(res.blocking)})" if res.blocking else ""
    lines.append(f"deadlock: {'YES' if res.deadlock else 'no'}{blocking}")
    # a DAG (forks, joins) also shows which kernels each FIFO connects: the skip FIFOs stand out
    ends = [f"  {p} -> {c}" for p, c in res.fifo_edges] if _branches(res.fifo_edges) else [""] * len(res.fifos)
    head = f"{'FIFO':<24}{'width':>8}{'depth':>8}{'max occupancy':>15}" + ("  from -> to" if any(ends) else "")
    lines += [head, "-" * len(head)]
    lines += [f"{f['name']:<24}{f['width']:>8,}{f['depth']:>8,}{f['max_occupancy']:>15,}{e}"
              for f, e in zip(res.fifos, ends)]
    return "\n".join(lines)


__all__ = ["Chain", "ChainRun", "KernelSchedule", "SimResult", "Timeline", "build_chain", "chain_edges",
           "critical_fifos", "depth_levels", "design_chain", "fifo_cost", "fifo_occupancy", "format_simulation",
           "deadlock_fifos", "gearbox_flags", "graph_ports", "kernel_schedule", "max_pool_axis_flags", "mvau_flags",
           "run_chain", "run_graph", "run_unbounded", "simulate", "simulate_chain", "size_chain", "size_fifos",
           "sliding_window_flags", "timelines"]
