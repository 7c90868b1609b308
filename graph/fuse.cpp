// Elementwise fusion: neighbouring elementwise ops over the same output shape become one step that
// walks the output in chunks of a few hundred elements and runs every op on a chunk before the
// next, so a chain like bias + relu, or sigmoid - x, reads and writes memory once instead of once
// per op. Results needed elsewhere are still stored; the others live only in a chunk buffer.
//
// Ops take part when they have run kernels (OpDef::f32_run) and each input is either a whole
// tensor of the output's shape, a single value, or a row repeated along the output (a bias [N]
// against [B, N]). Every element is computed by the same function as without fusion, so the
// results are the same bits, at any thread count.
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/program.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>
#include <numeric>
#include <optional>
#include <unordered_map>

namespace graphrun {
namespace {

constexpr std::int64_t kChunk = 512;        // elements per chunk: 2 KiB of floats, L1-resident
constexpr int kMaxScratch = 8;              // chunk buffers per fused step; more results are stored
constexpr std::size_t kMaxMembers = 32;
constexpr int kMaxRowInputs = 4;            // distinct row arguments per fused step

// The input's numel when it is a row repeated along `out` (its shape, leading ones dropped, is
// the trailing part of `out`), else 0.
std::int64_t row_length(Shape in, const Shape& out) {
  while (!in.empty() && in.front() == 1) in.erase(in.begin());
  if (in.empty() || in.size() > out.size()) return 0;
  if (!std::equal(in.begin(), in.end(), out.end() - static_cast<std::ptrdiff_t>(in.size()))) return 0;
  return numel(in);
}

// The length of the blocks along which the input repeats one value when it matches `out` on a run
// of neighbouring axes and is 1 elsewhere (a bias [1, C, 1, 1] against [N, C, H, W]: H W), else 0.
std::int64_t block_length(Shape in, const Shape& out) {
  if (in.size() > out.size()) return 0;
  in.insert(in.begin(), out.size() - in.size(), 1);
  std::size_t first = 0, last = in.size();
  while (first < in.size() && in[first] == 1) ++first;
  while (last > first && in[last - 1] == 1) --last;
  if (first == last) return 0;
  for (std::size_t d = first; d < last; ++d)
    if (in[d] != out[d]) return 0;
  return std::accumulate(out.begin() + static_cast<std::ptrdiff_t>(last), out.end(), std::int64_t{1},
                         std::multiplies<>());
}

}  // namespace

void Program::fuse_elementwise() {
  const std::size_t nsteps = steps_.size();
  auto out_of = [&](std::size_t s) { return steps_[s].out_slots.front(); };

  // How a step would join a fused chain: the lengths of its row and column arguments (0 when it
  // has none), or nothing if it cannot join one.
  struct Repeats {
    std::int64_t row = 0, column = 0;
  };
  auto fusable = [&](std::size_t s) -> std::optional<Repeats> {
    const Step& step = steps_[s];
    if (!step.op || !step.op->f32_run || step.out_slots.size() != 1) return std::nullopt;
    const Shape& shape = slots_[static_cast<std::size_t>(out_of(s))].shape;
    std::int64_t n = numel(shape);
    if (n == 0) return std::nullopt;
    Repeats rep;
    if (step.op->broadcast) {
      std::int64_t m = numel(step.in_shapes[0]);
      Broadcast b = step.op->broadcast(step.in_shapes, step.attrs);
      if (b == Broadcast::none) return std::nullopt;
      if (m == n || m == 1) return rep;
      if (b == Broadcast::row) rep.row = m;
      if (b == Broadcast::column) rep.column = n / m;
      return rep;
    }
    for (std::size_t i = 0; i < step.in_shapes.size(); ++i) {
      if (step.in_slots[i] < 0) return std::nullopt;
      std::int64_t m = numel(step.in_shapes[i]);
      if (m == n || m == 1) continue;
      if (std::int64_t r = row_length(step.in_shapes[i], shape)) {
        if (rep.row != 0 && r != rep.row) return std::nullopt;
        rep.row = r;
        continue;
      }
      std::int64_t block = block_length(step.in_shapes[i], shape);
      if (block == 0 || (rep.column != 0 && block != rep.column)) return std::nullopt;
      rep.column = block;
    }
    return rep;
  };
  // Chunks must not straddle a row or a column block; with both, they must be the same length.
  auto merge = [](Repeats a, Repeats b) -> std::optional<Repeats> {
    if ((a.row && b.row && a.row != b.row) || (a.column && b.column && a.column != b.column)) return std::nullopt;
    Repeats m{std::max(a.row, b.row), std::max(a.column, b.column)};
    if (m.row && m.column && m.row != m.column) return std::nullopt;
    return m;
  };

  // Which step writes each slot, and which steps read it.
  std::vector<int> writer(slots_.size(), -1);
  std::vector<std::vector<int>> readers(slots_.size());
  for (std::size_t s = 0; s < nsteps; ++s) {
    writer[static_cast<std::size_t>(out_of(s))] = static_cast<int>(s);
    for (int in : steps_[s].in_slots)
      if (in >= 0) readers[static_cast<std::size_t>(in)].push_back(static_cast<int>(s));
  }
  std::vector<bool> is_output(slots_.size(), false);
  for (int o : outputs_) is_output[static_cast<std::size_t>(o)] = true;

  // List scheduling over the steps' dependencies, with one chain open at a time: while a chain is
  // open, a ready step that can join it goes first, then one that leaves it open (it neither
  // reads the chain nor starts another); otherwise the earliest ready step in the compiled order.
  // A joining step's inputs are ready by then, as the chain runs where its last op lands; a step
  // that cannot join but reads a chain result closes the chain, since it must run after the whole
  // chain.
  std::vector<int> pending(nsteps, 0);
  for (std::size_t s = 0; s < nsteps; ++s)
    for (int in : steps_[s].in_slots)
      if (in >= 0 && writer[static_cast<std::size_t>(in)] >= 0) ++pending[s];
  std::vector<int> ready, order;
  for (std::size_t s = 0; s < nsteps; ++s)
    if (pending[s] == 0) ready.push_back(static_cast<int>(s));
  std::vector<int> group_of(nsteps, -1);
  std::vector<std::vector<int>> groups;
  bool open = false;
  Shape shape;
  Repeats repeats;
  auto joins = [&](int s) {
    auto r = fusable(static_cast<std::size_t>(s));
    return open && r && slots_[static_cast<std::size_t>(out_of(static_cast<std::size_t>(s)))].shape == shape &&
           merge(repeats, *r) && groups.back().size() < kMaxMembers;
  };
  // Steps that can neither join nor read the open chain leave it open, so they go before one that
  // would close it: a gradient's spread_like waiting on such a step can still join the chain.
  auto reads_chain = [&](int s) {
    for (int in : steps_[static_cast<std::size_t>(s)].in_slots)
      if (in >= 0 && writer[static_cast<std::size_t>(in)] >= 0 &&
          group_of[static_cast<std::size_t>(writer[static_cast<std::size_t>(in)])] == static_cast<int>(groups.size() - 1))
        return true;
    return false;
  };
  auto keeps_open = [&](int s) { return open && !fusable(static_cast<std::size_t>(s)) && !reads_chain(s); };
  while (!ready.empty()) {
    auto pick = ready.end();
    for (auto it = ready.begin(); it != ready.end(); ++it)
      if (joins(*it) && (pick == ready.end() || *it < *pick)) pick = it;
    if (pick == ready.end())
      for (auto it = ready.begin(); it != ready.end(); ++it)
        if (keeps_open(*it) && (pick == ready.end() || *it < *pick)) pick = it;
    if (pick == ready.end()) pick = std::min_element(ready.begin(), ready.end());
    const int s = *pick;
    ready.erase(pick);
    order.push_back(s);
    for (int reader : readers[static_cast<std::size_t>(out_of(static_cast<std::size_t>(s)))])
      if (--pending[static_cast<std::size_t>(reader)] == 0) ready.push_back(reader);

    auto r = fusable(static_cast<std::size_t>(s));
    if (joins(s)) {
      groups.back().push_back(s);
      group_of[static_cast<std::size_t>(s)] = static_cast<int>(groups.size() - 1);
      repeats = *merge(repeats, *r);
    } else if (r) {
      groups.push_back({s});
      group_of[static_cast<std::size_t>(s)] = static_cast<int>(groups.size() - 1);
      open = true;
      shape = slots_[static_cast<std::size_t>(out_of(static_cast<std::size_t>(s)))].shape;
      repeats = *r;
    } else if (open && reads_chain(s)) {
      open = false;
    }
  }

  auto fuse_group = [&](const std::vector<int>& members) {
    Step fused;
    std::unordered_map<int, int> member_of_slot;  // result slot -> member index
    std::vector<std::string> names;
    std::vector<int> nodes;
    int scratch = 0;
    const Shape& group_shape = slots_[static_cast<std::size_t>(out_of(static_cast<std::size_t>(members[0])))].shape;
    fused.fused_numel = numel(group_shape);
    for (int s : members) {
      Step& step = steps_[static_cast<std::size_t>(s)];
      FusedOp op;
      op.op = step.op;
      op.node = step.node;
      for (std::size_t i = 0; i < step.in_slots.size(); ++i) {
        int slot = step.in_slots[i];
        FusedArg& arg = op.args[i];
        if (slot < 0) {
          arg.kind = FusedArg::Kind::none;
          continue;
        }
        if (auto m = member_of_slot.find(slot); m != member_of_slot.end()) {
          arg = {FusedArg::Kind::member, m->second};
          continue;
        }
        auto known = std::find(fused.in_slots.begin(), fused.in_slots.end(), slot);
        arg.index = static_cast<int>(known - fused.in_slots.begin());
        if (known == fused.in_slots.end()) {
          fused.in_slots.push_back(slot);
          fused.in_shapes.push_back(step.in_shapes[i]);
        }
        std::int64_t m = numel(step.in_shapes[i]);
        Broadcast repeat = step.op->broadcast ? step.op->broadcast(step.in_shapes, step.attrs) : Broadcast::none;
        std::int64_t block = step.op->broadcast ? 0 : row_length(step.in_shapes[i], group_shape) ? 0
                                                    : block_length(step.in_shapes[i], group_shape);
        arg.kind = m == fused.fused_numel                    ? FusedArg::Kind::whole
                   : m == 1                                  ? FusedArg::Kind::scalar
                   : repeat == Broadcast::column || block > 0 ? FusedArg::Kind::column
                                                             : FusedArg::Kind::row;
        arg.period = m;
        if (arg.kind == FusedArg::Kind::row) fused.fused_row = m;
        if (arg.kind == FusedArg::Kind::column) fused.fused_column = block > 0 ? block : fused.fused_numel / m;
      }
      int result = step.out_slots.front();
      bool read_elsewhere = is_output[static_cast<std::size_t>(result)];
      for (int reader : readers[static_cast<std::size_t>(result)])
        if (std::find(members.begin(), members.end(), reader) == members.end()) read_elsewhere = true;
      if (read_elsewhere || scratch == kMaxScratch) {
        op.out_slot = result;
        fused.out_slots.push_back(result);
      } else {
        op.scratch = scratch++;
        slots_[static_cast<std::size_t>(result)].kind = Slot::Kind::fused;
      }
      member_of_slot[result] = static_cast<int>(fused.fused.size());
      fused.fused.push_back(op);
      names.push_back(step.op->name);
      nodes.push_back(step.node);
    }
    // Short rows go several to a chunk, their row arguments read from copies repeated to the
    // chunk's length (at most kMaxRowInputs of them); a column argument needs one row a chunk.
    int row_inputs = 0;
    for (const Shape& in : fused.in_shapes) row_inputs += numel(in) == fused.fused_row;
    fused.fused_whole_rows = fused.fused_row > 0 && fused.fused_column == 0 && 2 * fused.fused_row <= kChunk &&
                             row_inputs <= kMaxRowInputs;
    fused.fused_block = fused.fused_row > 0 ? fused.fused_row : fused.fused_column > 0 ? fused.fused_column : fused.fused_numel;
    fused.node = nodes.back();
    fused.in_ptrs.resize(fused.in_slots.size());
    fused.label = fmt::format("{} over {}, nodes {}", fmt::join(names, "+"), to_string(group_shape),
                              fmt::join(nodes, " "));
    return fused;
  };

  // Epilogues: a group (a single op too) that reads the whole output X of a step whose kernel
  // reports ranges ready, when nothing else reads X and the group's other inputs exist before
  // that step, runs inside it on each range as it is finished, while it is in cache, and
  // overwrites X with its last result: a bias and a relu after a convolution, or relu's gradient
  // after the convolution that computes its input, then cost no pass over memory of their own.
  std::vector<std::size_t> position(nsteps);
  for (std::size_t i = 0; i < order.size(); ++i) position[static_cast<std::size_t>(order[i])] = i;
  std::vector<int> epilogue_of(nsteps, -1);  // producer step -> its epilogue's group
  std::vector<bool> attached(groups.size(), false);
  for (std::size_t g = 0; g < groups.size(); ++g) {
    std::vector<int> outside;  // the group's inputs from outside it
    for (int s : groups[g])
      for (int in : steps_[static_cast<std::size_t>(s)].in_slots) {
        int w = in >= 0 ? writer[static_cast<std::size_t>(in)] : -1;
        if (in >= 0 && (w < 0 || group_of[static_cast<std::size_t>(w)] != static_cast<int>(g))) outside.push_back(in);
      }
    const Shape& group_shape = slots_[static_cast<std::size_t>(out_of(static_cast<std::size_t>(groups[g][0])))].shape;
    for (int x : outside) {
      const int p = writer[static_cast<std::size_t>(x)];
      if (p < 0 || epilogue_of[static_cast<std::size_t>(p)] >= 0 || is_output[static_cast<std::size_t>(x)]) continue;
      const Step& producer = steps_[static_cast<std::size_t>(p)];
      if (!producer.op || !producer.op->reports_ready || slots_[static_cast<std::size_t>(x)].shape != group_shape) continue;
      const auto& xr = readers[static_cast<std::size_t>(x)];
      bool only_reader = std::all_of(xr.begin(), xr.end(), [&](int r) {
        return group_of[static_cast<std::size_t>(r)] == static_cast<int>(g);
      });
      bool ready_before = std::all_of(outside.begin(), outside.end(), [&](int y) {
        int w = writer[static_cast<std::size_t>(y)];
        return y == x || w < 0 || position[static_cast<std::size_t>(w)] < position[static_cast<std::size_t>(p)];
      });
      if (!only_reader || !ready_before) continue;
      epilogue_of[static_cast<std::size_t>(p)] = static_cast<int>(g);
      attached[g] = true;
      break;
    }
  }
  std::vector<int> renamed(slots_.size());
  std::iota(renamed.begin(), renamed.end(), 0);
  // Hangs group g on `producer`, or says it cannot: the ranges the kernel reports are whole
  // leading-axis slices, and the epilogue's chunks must not straddle their ends.
  auto attach = [&](Step& producer, std::size_t g) {
    Step epilogue = fuse_group(groups[g]);
    const int x = producer.out_slots.front();
    const Shape& shape = slots_[static_cast<std::size_t>(x)].shape;
    const std::int64_t slice = shape.empty() || shape[0] == 0 ? 0 : epilogue.fused_numel / shape[0];
    const std::int64_t block = epilogue.fused_block == epilogue.fused_numel ? slice : epilogue.fused_block;
    if (epilogue.fused_whole_rows || block == 0 || slice % block != 0) {
      for (int s : groups[g])  // fuse_group marked its unstored results; they are stored after all
        for (int r : steps_[static_cast<std::size_t>(s)].out_slots) slots_[static_cast<std::size_t>(r)].kind = Slot::Kind::arena;
      return false;
    }
    epilogue.fused_block = block;
    FusedOp& last = epilogue.fused.back();
    if (last.out_slot >= 0) {
      renamed[static_cast<std::size_t>(last.out_slot)] = x;
      slots_[static_cast<std::size_t>(last.out_slot)].kind = Slot::Kind::fused;
      std::erase(epilogue.out_slots, last.out_slot);
      last.out_slot = x;
      last.in_place = true;
    }
    epilogue.label = fmt::format("then {}", epilogue.label);
    producer.epilogue.push_back(std::move(epilogue));
    return true;
  };

  std::vector<Step> out;
  out.reserve(nsteps);
  for (int s : order) {
    int g = group_of[static_cast<std::size_t>(s)];
    if (g >= 0 && attached[static_cast<std::size_t>(g)]) continue;  // it runs inside its producer
    if (g < 0 || groups[static_cast<std::size_t>(g)].size() == 1) {
      Step step = std::move(steps_[static_cast<std::size_t>(s)]);
      if (int e = epilogue_of[static_cast<std::size_t>(s)]; e >= 0 && !attach(step, static_cast<std::size_t>(e)))
        attached[static_cast<std::size_t>(e)] = false;
      out.push_back(std::move(step));
    } else if (groups[static_cast<std::size_t>(g)].back() == s) {
      out.push_back(fuse_group(groups[static_cast<std::size_t>(g)]));
    }
  }
  // Readers of an epilogue's last result read it where it was written, over its producer's output.
  auto rename = [&](std::vector<int>& slots) {
    for (int& slot : slots)
      if (slot >= 0) slot = renamed[static_cast<std::size_t>(slot)];
  };
  for (Step& step : out) {
    rename(step.in_slots);
    for (Step& e : step.epilogue) rename(e.in_slots);
  }
  rename(outputs_);
  steps_ = std::move(out);
  attach_blockwise_reductions();
}

// A reduction with OpDef::blockwise whose input is the whole output of a step that reports ranges
// ready (after that step's epilogue, if any) runs inside that step: its partials on each range
// while the range is in cache, its finish after the kernel. It reads nothing else, so nothing it
// needs comes later. A bias gradient's sum then costs no pass over a 13 MB tensor of its own.
void Program::attach_blockwise_reductions() {
  std::vector<int> producer(slots_.size(), -1);
  for (std::size_t i = 0; i < steps_.size(); ++i)
    if (steps_[i].op && steps_[i].op->reports_ready) producer[static_cast<std::size_t>(steps_[i].out_slots.front())] = static_cast<int>(i);
  std::vector<Step> kept;
  kept.reserve(steps_.size());
  std::vector<int> moved_to(steps_.size(), -1);
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    Step& r = steps_[i];
    const int x = r.in_slots.empty() ? -1 : r.in_slots.front();
    const int p = x >= 0 ? producer[static_cast<std::size_t>(x)] : -1;
    const bool reads_only_x = std::all_of(r.in_slots.begin() + (r.in_slots.empty() ? 0 : 1), r.in_slots.end(),
                                          [](int in) { return in < 0; });
    const std::int64_t partials =
        p >= 0 && reads_only_x && r.op && r.op->blockwise.partials && r.out_slots.size() == 1
            ? r.op->blockwise.partials(r.in_shapes, r.attrs)
            : 0;
    if (partials <= 0) {
      kept.push_back(std::move(r));
      continue;
    }
    r.partials.assign(static_cast<std::size_t>(partials), 0.0);
    moved_to[i] = p;
  }
  // Moved after the loop: a producer comes before its reader, and `kept` holds the producers.
  std::vector<int> index_in_kept(steps_.size(), -1);
  for (std::size_t i = 0, k = 0; i < steps_.size(); ++i)
    if (moved_to[i] < 0) index_in_kept[i] = static_cast<int>(k++);
  for (std::size_t i = 0; i < steps_.size(); ++i)
    if (moved_to[i] >= 0)
      kept[static_cast<std::size_t>(index_in_kept[static_cast<std::size_t>(moved_to[i])])].reductions.push_back(std::move(steps_[i]));
  steps_ = std::move(kept);
}

std::vector<int> Program::reads(const Step& step) {
  std::vector<int> slots = step.in_slots;
  for (const Step& e : step.epilogue) slots.insert(slots.end(), e.in_slots.begin(), e.in_slots.end());
  for (const Step& r : step.reductions) slots.insert(slots.end(), r.in_slots.begin(), r.in_slots.end());
  return slots;
}

std::vector<int> Program::writes(const Step& step) {
  std::vector<int> slots = step.out_slots;
  for (const Step& e : step.epilogue) slots.insert(slots.end(), e.out_slots.begin(), e.out_slots.end());
  for (const Step& r : step.reductions) slots.insert(slots.end(), r.out_slots.begin(), r.out_slots.end());
  return slots;
}

// Chunks never straddle a block (a row, or a column argument's block), so a row argument is
// contiguous within each chunk and a column argument one value; a column argument's blocks cycle
// through its values (a bias [1, C, 1, 1] over [N, C, H, W]). Rows shorter than half a chunk are
// taken several at a time, reading row arguments from a copy repeated to the chunk's length: a
// [128, 20] chain with a bias then walks 6 chunks instead of 128, and its per-op call overhead
// stops dwarfing the arithmetic.
Program::ChunkLayout Program::chunk_layout(const Step& step) {
  ChunkLayout l;
  const std::int64_t n = step.fused_numel;
  l.block = step.fused_whole_rows ? step.fused_row : step.fused_block;
  l.chunk = step.fused_whole_rows ? kChunk / l.block * l.block : std::min(l.block, kChunk);
  l.per_block = step.fused_whole_rows ? 1 : (l.block + l.chunk - 1) / l.chunk;
  l.count = step.fused_whole_rows ? (n + l.chunk - 1) / l.chunk : n / l.block * l.per_block;
  return l;
}

template <class T>
void Program::run_fused(const Step& step) {
  const ChunkLayout l = chunk_layout(step);
  parallel_for(l.count, std::max<std::int64_t>(1, kGrain / l.chunk),
               [&](std::int64_t b, std::int64_t e) { run_fused_chunks<T>(step, b, e); });
}

// Elements [first, first + count), whole blocks, of an epilogue; `context` is an EpilogueRun.
template <class T>
void Program::run_epilogue(const void* context, std::int64_t first, std::int64_t count) {
  const auto& run = *static_cast<const EpilogueRun*>(context);
  if (!run.step->epilogue.empty()) {
    const Step& chain = run.step->epilogue.front();
    const ChunkLayout l = chunk_layout(chain);
    run.program->run_fused_chunks<T>(chain, first / l.block * l.per_block, (first + count) / l.block * l.per_block);
  }
  for (const Step& r : run.step->reductions) {
    if constexpr (std::is_same_v<T, float>)
      r.op->blockwise.f32_partial(run.program->kernel_args<T>(r), r.partials.data(), first, count);
    else
      r.op->blockwise.f64_partial(run.program->kernel_args<T>(r), r.partials.data(), first, count);
  }
}

template <class T>
void Program::run_fused_chunks(const Step& step, std::int64_t b, std::int64_t e) {
  const std::int64_t n = step.fused_numel;
  const ChunkLayout l = chunk_layout(step);
  const std::int64_t column = step.fused_column, row = l.block, chunk = l.chunk, per_row = l.per_block;
  const bool whole_rows = step.fused_whole_rows;
  alignas(64) T scratch[kMaxScratch][kChunk];
  alignas(64) T repeated[kMaxRowInputs][kChunk];
  alignas(64) T staged[kChunk];
  int repeated_input[kMaxRowInputs];  // which step input each repeated row copies
  int repeats = 0;
  auto repeated_row = [&](int input, const T* base) -> const T* {
    for (int r = 0; r < repeats; ++r)
      if (repeated_input[r] == input) return repeated[r];
    repeated_input[repeats] = input;
    for (std::int64_t at = 0; at < chunk; at += row) std::copy(base, base + row, repeated[repeats] + at);
    return repeated[repeats++];
  };
  for (std::int64_t c = b; c < e; ++c) {
    std::int64_t in_row = c % per_row * chunk;
    std::int64_t first = whole_rows ? c * chunk : c / per_row * row + in_row;
    std::int64_t len = whole_rows ? std::min(chunk, n - first) : std::min(chunk, row - in_row);
    for (const FusedOp& op : step.fused) {
      const T* args[2] = {};
      bool scalar[2] = {};
      for (int i = 0; i < op.op->arity; ++i) {
        const FusedArg& a = op.args[static_cast<std::size_t>(i)];
        if (a.kind == FusedArg::Kind::member) {
          const FusedOp& from = step.fused[static_cast<std::size_t>(a.index)];
          args[i] = from.out_slot >= 0
                        ? static_cast<const T*>(slots_[static_cast<std::size_t>(from.out_slot)].ptr) + first
                        : scratch[from.scratch];
          continue;
        }
        if (a.kind == FusedArg::Kind::none) continue;
        const T* base = static_cast<const T*>(step.in_ptrs[static_cast<std::size_t>(a.index)]);
        args[i] = a.kind == FusedArg::Kind::whole    ? base + first
                  : a.kind == FusedArg::Kind::row    ? (whole_rows ? repeated_row(a.index, base) : base + in_row)
                  : a.kind == FusedArg::Kind::column ? base + first / column % a.period
                                                     : base;
        scalar[i] = a.kind == FusedArg::Kind::scalar || a.kind == FusedArg::Kind::column;
      }
      T* stored = op.out_slot >= 0 ? static_cast<T*>(slots_[static_cast<std::size_t>(op.out_slot)].ptr) + first : nullptr;
      T* result = !stored ? scratch[op.scratch] : op.in_place ? staged : stored;
      if constexpr (std::is_same_v<T, float>) op.op->f32_run(args, scalar, result, len);
      else op.op->f64_run(args, scalar, result, len);
      if (op.in_place) std::copy(staged, staged + len, stored);
    }
  }
}

template void Program::run_fused<float>(const Step&);
template void Program::run_fused<double>(const Step&);
template void Program::run_epilogue<float>(const void*, std::int64_t, std::int64_t);
template void Program::run_epilogue<double>(const void*, std::int64_t, std::int64_t);

}  // namespace graphrun
