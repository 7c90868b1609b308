// compile: dead-code elimination, topological order (Boost.Graph), shape inference with concrete
// input shapes, elementwise fusion (fuse.cpp), and a liveness-based memory plan into one arena.
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/program.hpp>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/topological_sort.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>

namespace graphrun {
namespace {

enum Need : char { kNone = 0, kShape = 1, kValue = 2 };

// What `outputs` need of each node: its value, or only its shape (an input an op declares
// shape-only, and everything upstream of it that nothing else needs the value of).
std::vector<char> needed(const Graph& graph, const std::vector<Value>& outputs) {
  std::vector<char> need(static_cast<std::size_t>(graph.size()), kNone);
  std::vector<std::pair<int, char>> stack;
  for (const auto& v : outputs) stack.emplace_back(v.id(), kValue);
  while (!stack.empty()) {
    auto [id, level] = stack.back();
    stack.pop_back();
    auto& n = need[static_cast<std::size_t>(id)];
    if (n >= level) continue;  // levels only rise, so this ends even on a cycle
    n = level;
    const Node& node = graph.node(id);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      bool value = level == kValue && !(node.op && node.op->input_shape_only(i));
      stack.emplace_back(node.inputs[i], value ? kValue : kShape);
    }
  }
  return need;
}

// Orders the live nodes so that each follows its inputs, with Boost.Graph's topological sort.
std::vector<int> schedule_order(const Graph& graph, const std::vector<int>& live,
                                const std::vector<Value>& outputs) {
  using BGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
  std::vector<int> index(static_cast<std::size_t>(graph.size()), -1);
  for (std::size_t i = 0; i < live.size(); ++i) index[static_cast<std::size_t>(live[i])] = static_cast<int>(i);
  BGraph bg(live.size());
  for (int id : live)
    for (int in : graph.node(id).inputs)
      boost::add_edge(static_cast<std::size_t>(index[static_cast<std::size_t>(in)]),
                      static_cast<std::size_t>(index[static_cast<std::size_t>(id)]), bg);
  std::vector<std::size_t> reversed;
  try {
    boost::topological_sort(bg, std::back_inserter(reversed));
  } catch (const boost::not_a_dag&) {
    std::vector<int> roots;
    for (const auto& v : outputs) roots.push_back(v.id());
    topological_order(graph, roots);  // throws, naming a node on the cycle
    throw std::logic_error("the graph has a cycle");
  }
  std::vector<int> order;
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) order.push_back(live[*it]);
  return order;
}

// A set of steps per step, as rows of bits: rows OR and AND a word at a time.
class StepSets {
 public:
  explicit StepSets(std::size_t n) : words_((n + 63) / 64), bits_(n * words_) {}
  bool test(std::size_t row, std::size_t step) const {
    return (bits_[row * words_ + step / 64] >> (step % 64)) & 1u;
  }
  void set(std::size_t row, std::size_t step) {
    bits_[row * words_ + step / 64] |= std::uint64_t{1} << (step % 64);
  }
  void unite(std::size_t row, std::size_t from) {
    for (std::size_t w = 0; w < words_; ++w) bits_[row * words_ + w] |= bits_[from * words_ + w];
  }
  std::size_t words() const { return words_; }
  const std::uint64_t* row(std::size_t r) const { return bits_.data() + r * words_; }

 private:
  std::size_t words_;
  std::vector<std::uint64_t> bits_;
};

struct PlannedBuffer {
  std::size_t bytes = 0;
  int writer = 0;
  int last = 0;            // its last user in schedule order (INT_MAX for an output)
  std::vector<int> users;  // sorted steps: the writer and every reader
  bool forever = false;    // a program output: read after the program, by its caller
  std::size_t offset = 0;
};

// Places every arena buffer at once, knowing all their lives: the largest first, each at the
// lowest offset where it overlaps no placed buffer it may not share bytes with. Two buffers may
// share bytes only if every step that uses one (its writer and readers) is a data ancestor of the
// other's writer: reusing memory then never orders two steps that could otherwise run at the same
// time (run_dag). A plan for one thread (not `concurrent`) asks only that they come earlier in
// the schedule. Handing out freed blocks step by step (first fit) left holes below a later,
// larger buffer, which then went to the end: the batch-norm conv VAE's training program planned
// 187.8 MiB that way and 119.1 placed by size, with 106.5 MiB alive at its fullest step.
// Sets each buffer's offset and returns the arena's size. ancestors: the steps each step reads a
// result of, directly or not; descendants: the steps that read each step's results so.
std::size_t place_by_size(std::vector<PlannedBuffer>& buffers, const StepSets& ancestors,
                          const StepSets& descendants, bool concurrent) {
  std::vector<std::size_t> order(buffers.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return buffers[a].bytes > buffers[b].bytes;
  });
  std::size_t size = 0;
  std::vector<std::size_t> placed;                      // by offset
  std::vector<std::uint64_t> after(ancestors.words());  // the steps that follow all of x's users
  for (std::size_t i : order) {
    PlannedBuffer& x = buffers[i];
    x.bytes = std::max(kAlignment, (x.bytes + kAlignment - 1) / kAlignment * kAlignment);
    std::fill(after.begin(), after.end(), x.forever ? 0 : ~std::uint64_t{0});
    if (concurrent && !x.forever)
      for (int u : x.users) {
        const std::uint64_t* d = descendants.row(static_cast<std::size_t>(u));
        for (std::size_t w = 0; w < after.size(); ++w) after[w] &= d[w];
      }
    // Whether one's bytes are free before the other's writer starts.
    auto apart = [&](const PlannedBuffer& y) {
      if (!concurrent) return y.last < x.writer || x.last < y.writer;
      if (y.last < x.writer)
        return std::all_of(y.users.begin(), y.users.end(), [&](int u) {
          return ancestors.test(static_cast<std::size_t>(x.writer), static_cast<std::size_t>(u));
        });
      if (x.last < y.writer)
        return ((after[static_cast<std::size_t>(y.writer) / 64] >> (y.writer % 64)) & 1u) != 0;
      return false;  // their lives overlap in schedule order, which ancestors follow
    };
    std::size_t at = 0;
    for (std::size_t j : placed) {
      const PlannedBuffer& y = buffers[j];
      if (y.offset >= at + x.bytes) break;
      if (!apart(y)) at = std::max(at, y.offset + y.bytes);
    }
    x.offset = at;
    size = std::max(size, at + x.bytes);
    auto by_offset = [&](std::size_t offset, std::size_t j) { return offset < buffers[j].offset; };
    placed.insert(std::upper_bound(placed.begin(), placed.end(), at, by_offset), i);
  }
  return size;
}

}  // namespace

Program compile_program(const Graph& graph, const std::vector<Value>& outputs,
                        const ShapeMap& input_shapes, const CompileOptions& options) {
  for (const auto& v : outputs)
    if (!v.valid() || &v.graph() != &graph)
      throw std::invalid_argument("compile: an output does not belong to this graph");
  for (const auto& [name, shape] : input_shapes) check_shape(shape);

  Program p;
  p.graph_ = &graph;
  p.dtype_ = options.dtype;
  p.check_numerics_ = options.check_numerics;
  auto need = needed(graph, outputs);
  std::vector<int> live;
  for (int id = 0; id < graph.size(); ++id)
    if (need[static_cast<std::size_t>(id)] != kNone) live.push_back(id);
  auto order = schedule_order(graph, live, outputs);

  // Shapes of every live node; slots (memory) only for the nodes whose values are needed.
  std::vector<Shape> shape_of(static_cast<std::size_t>(graph.size()));
  std::vector<int> slot_of(static_cast<std::size_t>(graph.size()), -1);
  std::size_t esize = dtype_size(options.dtype);
  // Op nodes already given a step, by op and input buffers, for share_duplicates.
  std::map<std::string, std::vector<int>> computed;
  for (int id : order) {
    const Node& node = graph.node(id);
    std::vector<Shape> in_shapes;
    for (int in : node.inputs) in_shapes.push_back(shape_of[static_cast<std::size_t>(in)]);
    auto given = input_shapes.find(node.name);
    Shape& shape = shape_of[static_cast<std::size_t>(id)];
    if (node.kind == NodeKind::op) shape = infer_shape(node, in_shapes);
    else if (node.kind == NodeKind::input && given != input_shapes.end()) shape = given->second;
    else shape = node.shape;
    if (need[static_cast<std::size_t>(id)] != kValue) continue;
    if (node.kind == NodeKind::op && node.op->same_shape_is_identity && shape == in_shapes[0]) {
      slot_of[static_cast<std::size_t>(id)] = slot_of[static_cast<std::size_t>(node.inputs[0])];
      continue;
    }

    if (node.kind == NodeKind::op && options.share_duplicates && !node.op->random) {
      std::string key = node.op->name;
      for (std::size_t i = 0; i < node.inputs.size(); ++i)
        key += node.op->input_shape_only(i) ? " " + to_string(in_shapes[i])
                                             : fmt::format(" {}", slot_of[static_cast<std::size_t>(node.inputs[i])]);
      auto& twins = computed[key];
      auto twin = std::find_if(twins.begin(), twins.end(), [&](int other) {
        return graph.node(other).attrs.items() == node.attrs.items();
      });
      if (twin != twins.end()) {
        slot_of[static_cast<std::size_t>(id)] = slot_of[static_cast<std::size_t>(*twin)];
        ++p.plan_.shared_steps;
        continue;
      }
      twins.push_back(id);
    }

    Program::Slot slot;
    slot.shape = shape;
    if (node.kind == NodeKind::op) {
      Program::Step step;
      step.node = id;
      step.stream = node.stream;
      step.op = node.op;
      step.attrs = node.attrs;
      for (std::size_t i = 0; i < node.inputs.size(); ++i)
        step.in_slots.push_back(node.op->input_shape_only(i)
                                    ? -1
                                    : slot_of[static_cast<std::size_t>(node.inputs[i])]);
      step.in_shapes = std::move(in_shapes);
      step.in_ptrs.resize(step.in_slots.size());
      step.out_slots = {static_cast<int>(p.slots_.size())};
      step.label = node.describe();
      p.steps_.push_back(std::move(step));
    } else if (node.kind == NodeKind::constant) {
      slot.kind = Program::Slot::Kind::constant;
      Tensor t(DType::f64, node.shape);
      std::copy(node.values.begin(), node.values.end(), t.data<double>());
      p.constants_.push_back(options.dtype == DType::f64 ? t : t.to(DType::f32));
      slot.ptr = p.constants_.back().raw();
      p.plan_.constant_bytes += p.constants_.back().bytes();
    } else {
      slot.kind = Program::Slot::Kind::external;
      slot.name = node.name;
      p.binding_shapes_[node.name] = slot.shape;
    }
    slot_of[static_cast<std::size_t>(id)] = static_cast<int>(p.slots_.size());
    p.slots_.push_back(std::move(slot));
  }
  for (const auto& v : outputs) p.outputs_.push_back(slot_of[static_cast<std::size_t>(v.id())]);
  if (options.fuse && !options.check_numerics) p.fuse_elementwise();

  {  // the plan's bit matrices go before plan_dependencies() makes its own
    // Who uses each buffer: the step that writes it and the steps that read it.
    const std::size_t steps = p.steps_.size();
    std::vector<int> writer(p.slots_.size(), -1);
    std::vector<std::vector<int>> readers(p.slots_.size());
    std::vector<std::vector<int>> step_reads(steps), step_writes(steps);
    for (std::size_t s = 0; s < steps; ++s) {
      step_reads[s] = Program::reads(p.steps_[s]);
      step_writes[s] = Program::writes(p.steps_[s]);
      for (int in : step_reads[s])
        if (in >= 0) {
          auto& r = readers[static_cast<std::size_t>(in)];
          if (r.empty() || r.back() != static_cast<int>(s)) r.push_back(static_cast<int>(s));
        }
      for (int out : step_writes[s]) writer[static_cast<std::size_t>(out)] = static_cast<int>(s);
    }
    // ancestors: the steps whose results each step reads, directly or not; descendants: the
    // other way round. Only a concurrent plan needs them.
    const bool concurrent = options.concurrent_plan.value_or(num_threads() > 1);
    const std::size_t sets = concurrent ? steps : 0;
    StepSets ancestors(sets), descendants(sets);
    for (std::size_t s = 0; s < sets; ++s)
      for (int in : step_reads[s]) {
        int w = in >= 0 ? writer[static_cast<std::size_t>(in)] : -1;
        if (w < 0 || w == static_cast<int>(s)) continue;  // an epilogue reads its producer's output
        ancestors.unite(s, static_cast<std::size_t>(w));
        ancestors.set(s, static_cast<std::size_t>(w));
      }
    for (std::size_t s = sets; s-- > 0;)
      for (int out : step_writes[s])
        for (int r : readers[static_cast<std::size_t>(out)]) {
          if (r == static_cast<int>(s)) continue;
          descendants.unite(s, static_cast<std::size_t>(r));
          descendants.set(s, static_cast<std::size_t>(r));
        }
    std::vector<int> planned;  // slot of each buffer
    std::vector<PlannedBuffer> buffers;
    for (std::size_t s = 0; s < steps; ++s)
      for (int out : step_writes[s]) {
        const auto& slot = p.slots_[static_cast<std::size_t>(out)];
        PlannedBuffer b;
        b.bytes = static_cast<std::size_t>(numel(slot.shape)) * esize;
        b.writer = static_cast<int>(s);
        b.users = readers[static_cast<std::size_t>(out)];
        b.users.push_back(b.writer);
        std::sort(b.users.begin(), b.users.end());
        b.forever = std::find(p.outputs_.begin(), p.outputs_.end(), out) != p.outputs_.end();
        b.last = b.forever ? std::numeric_limits<int>::max() : b.users.back();
        p.plan_.buffer_bytes += b.bytes;
        ++p.plan_.buffers;
        planned.push_back(out);
        buffers.push_back(std::move(b));
      }
    p.plan_.arena_bytes = place_by_size(buffers, ancestors, descendants, concurrent);
    for (std::size_t i = 0; i < buffers.size(); ++i)
      p.slots_[static_cast<std::size_t>(planned[i])].offset = buffers[i].offset;
  }
  // The arena is left as the allocator hands it over: every step writes its output before
  // anything reads it, so zeroing it only paid for a first touch of each page inside compile. On
  // the project's virtual machines that was most of compiling a VAE (the memset and its page
  // faults, 1.7 to 11 ms of it, against 0.2 ms of graph work); now the first run pays it, once, as
  // it writes. Checking builds fill it with NaN bytes instead, so a read before a write would show.
  if (options.arena) {
    options.arena->reserve(p.plan_.arena_bytes);
    p.shared_arena_ = options.arena;
  } else {
    p.arena_ = aligned_alloc_uninitialized(p.plan_.arena_bytes);
#ifdef GRAPHRUN_POISON_ARENA
    std::memset(p.arena_.get(), 0xff, p.plan_.arena_bytes);
#endif
  }
  p.follow_shared_arena();
  p.plan_dependencies();
  return p;
}

ProgramCache::ProgramCache(const Graph& graph, std::vector<Value> outputs, CompileOptions options)
    : graph_(&graph), outputs_(std::move(outputs)), options_(std::move(options)) {
  if (!options_.arena) options_.arena = std::make_shared<SharedArena>();
}

void SharedArena::reserve(std::size_t bytes) {
  if (memory_ && bytes <= bytes_) return;
  // The new memory before the old is freed, so it is always somewhere else: every program
  // sharing it then re-points on its next run, and a test can see that it does. Growing is
  // rare (the largest program usually compiles first), so the brief peak of both is too.
  memory_ = aligned_alloc_uninitialized(std::max<std::size_t>(bytes, 1));
  bytes_ = bytes;
#ifdef GRAPHRUN_POISON_ARENA
  std::memset(memory_.get(), 0xff, bytes);
#endif
}

Program& ProgramCache::get(const ShapeMap& input_shapes) {
  // Keyed by the shape every input will have, so a shape given explicitly and the same shape
  // left to its declaration share one program, and names the graph does not read are ignored
  // (as compile ignores them).
  std::string key;
  for (int id = 0; id < graph_->size(); ++id) {
    const Node& node = graph_->node(id);
    if (node.kind != NodeKind::input) continue;
    auto given = input_shapes.find(node.name);
    key += node.name + to_string(given != input_shapes.end() ? given->second : node.shape) + ";";
  }
  auto found = programs_.find(key);
  if (found != programs_.end()) return *found->second;
  // Compiled before it is stored, so a shape error leaves no empty entry behind.
  auto program = std::make_unique<Program>(compile_program(*graph_, outputs_, input_shapes, options_));
  return *programs_.emplace(std::move(key), std::move(program)).first->second;
}

}  // namespace graphrun
