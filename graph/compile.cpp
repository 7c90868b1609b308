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

// First-fit allocator over a growing arena; freed blocks are merged with their neighbours. Each
// free block remembers the steps that used its bytes, and a step takes only a block all of whose
// users it already depends on through data: reusing memory then never orders two steps that
// could otherwise run at the same time (run_dag).
class ArenaPlanner {
 public:
  template <class Usable>
  std::size_t allocate(std::size_t bytes, Usable usable) {
    bytes = round_up(bytes);
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if (it->bytes < bytes || !usable(it->users)) continue;
      std::size_t offset = it->offset;
      if (it->bytes == bytes) {
        free_.erase(it);
      } else {
        it->offset += bytes;
        it->bytes -= bytes;
      }
      return offset;
    }
    std::size_t offset = end_;
    end_ += bytes;
    return offset;
  }
  void release(std::size_t offset, std::size_t bytes, std::vector<int> users) {
    bytes = round_up(bytes);
    auto it = std::lower_bound(free_.begin(), free_.end(), offset,
                               [](const Block& b, std::size_t o) { return b.offset < o; });
    it = free_.insert(it, {offset, bytes, std::move(users)});
    if (auto next = std::next(it); next != free_.end() && it->offset + it->bytes == next->offset) {
      merge(*it, *next);
      free_.erase(next);
    }
    if (it != free_.begin()) {
      auto prev = std::prev(it);
      if (prev->offset + prev->bytes == it->offset) {
        merge(*prev, *it);
        free_.erase(it);
      }
    }
  }
  std::size_t size() const { return end_; }

 private:
  struct Block {
    std::size_t offset, bytes;
    std::vector<int> users;  // sorted steps
  };
  static void merge(Block& into, const Block& from) {
    into.bytes += from.bytes;
    std::vector<int> users;
    std::set_union(into.users.begin(), into.users.end(), from.users.begin(), from.users.end(),
                   std::back_inserter(users));
    into.users = std::move(users);
  }
  static std::size_t round_up(std::size_t b) {
    return std::max<std::size_t>(kAlignment, (b + kAlignment - 1) / kAlignment * kAlignment);
  }
  std::vector<Block> free_;  // sorted by offset
  std::size_t end_ = 0;
};

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

  // Liveness: a buffer is free after the last step that reads it, unless it is an output.
  constexpr int kForever = std::numeric_limits<int>::max();
  const std::size_t steps = p.steps_.size();
  std::vector<int> last_use(p.slots_.size(), -1), writer(p.slots_.size(), -1);
  std::vector<std::vector<int>> readers(p.slots_.size());
  std::vector<std::vector<int>> step_reads(steps), step_writes(steps);
  for (std::size_t s = 0; s < steps; ++s) {
    step_reads[s] = Program::reads(p.steps_[s]);
    step_writes[s] = Program::writes(p.steps_[s]);
    for (int in : step_reads[s])
      if (in >= 0) {
        last_use[static_cast<std::size_t>(in)] = static_cast<int>(s);
        auto& r = readers[static_cast<std::size_t>(in)];
        if (r.empty() || r.back() != static_cast<int>(s)) r.push_back(static_cast<int>(s));
      }
    for (int out : step_writes[s]) writer[static_cast<std::size_t>(out)] = static_cast<int>(s);
  }
  for (int out : p.outputs_) last_use[static_cast<std::size_t>(out)] = kForever;
  std::vector<std::vector<int>> dies_after(steps);
  for (std::size_t s = 0; s < p.slots_.size(); ++s)
    if (p.slots_[s].kind == Program::Slot::Kind::arena && last_use[s] >= 0 && last_use[s] != kForever)
      dies_after[static_cast<std::size_t>(last_use[s])].push_back(static_cast<int>(s));
  // ancestors[s][j]: step s reads, directly or not, a result of step j.
  std::vector<std::vector<bool>> ancestors(steps, std::vector<bool>(steps));
  for (std::size_t s = 0; s < steps; ++s)
    for (int in : step_reads[s]) {
      int w = in >= 0 ? writer[static_cast<std::size_t>(in)] : -1;
      if (w < 0 || w == static_cast<int>(s)) continue;  // an epilogue reads its producer's output
      auto& mine = ancestors[s];
      const auto& theirs = ancestors[static_cast<std::size_t>(w)];
      mine[static_cast<std::size_t>(w)] = true;
      for (std::size_t j = 0; j < static_cast<std::size_t>(w); ++j)
        if (theirs[j]) mine[j] = true;
    }
  auto users_of = [&](int slot) {
    std::vector<int> users = readers[static_cast<std::size_t>(slot)];
    users.push_back(writer[static_cast<std::size_t>(slot)]);
    std::sort(users.begin(), users.end());
    return users;
  };

  ArenaPlanner planner;
  for (std::size_t s = 0; s < steps; ++s) {
    auto usable = [&](const std::vector<int>& users) {
      for (int u : users)
        if (!ancestors[s][static_cast<std::size_t>(u)]) return false;
      return true;
    };
    // Outputs are placed before the inputs are released: kernels may read inputs while writing.
    for (int out : step_writes[s]) {
      auto& slot = p.slots_[static_cast<std::size_t>(out)];
      std::size_t bytes = static_cast<std::size_t>(numel(slot.shape)) * esize;
      slot.offset = planner.allocate(bytes, usable);
      p.plan_.buffer_bytes += bytes;
      ++p.plan_.buffers;
    }
    for (int out : step_writes[s])
      if (last_use[static_cast<std::size_t>(out)] < 0) {  // never read: free at once
        auto& slot = p.slots_[static_cast<std::size_t>(out)];
        planner.release(slot.offset, static_cast<std::size_t>(numel(slot.shape)) * esize, users_of(out));
      }
    for (int dead : dies_after[s]) {
      auto& d = p.slots_[static_cast<std::size_t>(dead)];
      planner.release(d.offset, static_cast<std::size_t>(numel(d.shape)) * esize, users_of(dead));
    }
  }
  p.plan_.arena_bytes = planner.size();
  // The arena is left as the allocator hands it over: every step writes its output before
  // anything reads it, so zeroing it only paid for a first touch of each page inside compile. On
  // the project's virtual machines that was most of compiling a VAE (the memset and its page
  // faults, 1.7 to 11 ms of it, against 0.2 ms of graph work); now the first run pays it, once, as
  // it writes. Checking builds fill it with NaN bytes instead, so a read before a write would show.
  if (options.arena) {
    options.arena->reserve(planner.size());
    p.shared_arena_ = options.arena;
  } else {
    p.arena_ = aligned_alloc_uninitialized(planner.size());
#ifdef GRAPHRUN_POISON_ARENA
    std::memset(p.arena_.get(), 0xff, planner.size());
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
