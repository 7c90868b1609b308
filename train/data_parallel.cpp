// Data-parallel steps of the Trainer: each rank trains its part of the global batch, the parts'
// gradients are summed through the Communicator in one fused buffer, and every rank applies the
// same update. The batch keeps its meaning: a part of r rows out of B contributes its gradient
// of the mean loss times r / B, so the sum is the gradient of the whole batch's mean loss.
//
// Fused buffer of one part: [gradient of every parameter, in grad_names_ order | loss | terms... |
// each buffer's new value (Model::updates) | stop flag]. The new values are weighted by rows as
// the gradients are, so their sum is the row-weighted mean of the parts'. Default mode: one part
// per rank, written to the Communicator's sum_input and summed into fused_ by all_reduce_sum (a
// fixed ring order: the same bits for the same number of ranks). Where the ranks share memory,
// the communicator sums only each rank's own chunk (reduce_scatter_sum) and the ranks share the
// update instead (shared_update): each updates its chunk of the parameters and they gather the
// rest, the same bits as the whole update on every rank. Shards mode (config.shards = K): K
// fixed parts of the batch, each rank computing a contiguous run of them; the K buffers are
// gathered (a copy) and summed in shard order on every rank, so the bits do not depend on how
// many ranks computed them.
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

namespace graphrun {
namespace {

constexpr std::int64_t kCopyGrain = std::int64_t{1} << 14;

std::string not_finite(double v) { return std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"; }

}  // namespace

void Trainer::run_part(const Split& data, std::span<const std::int64_t> rows_of,
                       std::int64_t offset, std::int64_t total, std::int64_t step, float* out) {
  const auto g_floats = static_cast<std::size_t>(parallel_stats_.gradient_floats);
  const std::size_t extras = 1 + model_.terms.size();
  const auto u_floats = static_cast<std::size_t>(update_floats_);
  const auto rows = static_cast<std::int64_t>(rows_of.size());
  if (rows == 0) {  // a last batch smaller than the number of parts
    std::fill(out, out + g_floats + extras + u_floats, 0.0f);
    return;
  }
  auto& [p, grad_refs, norms, updates, arena] = bind_batch(data, rows_of, step);
  RunOptions run{true, config_.seed, static_cast<std::uint64_t>(step)};
  run.batch_offset = offset;  // each row draws its noise as in a one-process step
  p.run(run);
  const double weight = static_cast<double>(rows) / static_cast<double>(total);
  const auto scale = static_cast<float>(weight);
  std::size_t at = 0;
  for (const GradRef& g : grad_refs) {
    const std::int64_t n = params_.at(g.name).numel();
    const float* __restrict src = g.grad;
    float* __restrict dst = out + at;
    parallel_for(n, kCopyGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t j = b; j < e; ++j) dst[j] = src[j] * scale;
    });
    at += static_cast<std::size_t>(n);
  }
  for (std::size_t k = 0; k < extras; ++k)
    out[g_floats + k] = static_cast<float>(p.output(k).item() * weight);
  float* next = out + g_floats + extras;
  for (std::size_t k = 0; k < updates.size(); ++k) {
    const std::int64_t n = numel(model_.updates[k].buffer.shape());
    for (std::int64_t j = 0; j < n; ++j) next[j] = updates[k][j] * scale;
    next += n;
  }
}

void Trainer::apply_updates(const float* values) {
  for (const auto& u : model_.updates) {
    Tensor& buffer = params_.at(u.buffer.node().name);
    std::copy_n(values, buffer.numel(), buffer.data<float>());
    values += buffer.numel();
  }
}

const std::vector<double>& Trainer::parallel_step(const Split& data,
                                                  std::span<const std::int64_t> rows,
                                                  std::int64_t step,
                                                  FunctionRef<std::string()> where, bool stop) {
  const int ranks = comm_->size(), rank = comm_->rank();
  const std::int64_t shards = config_.shards;
  if (shards > 0 && shards < ranks)
    throw std::invalid_argument(fmt::format("train.shards = {} is fewer than the {} ranks: each "
                                            "rank needs at least one shard", shards, ranks));
  const std::size_t extras = 1 + model_.terms.size();
  const auto u_floats = static_cast<std::size_t>(update_floats_);
  if (parallel_stats_.gradient_floats == 0) {  // first step: size the buffers once
    for (const auto& name : grad_names_) parallel_stats_.gradient_floats += params_.at(name).numel();
    const auto slot = static_cast<std::size_t>(parallel_stats_.gradient_floats) + extras + u_floats + 1;
    fused_.assign(slot * static_cast<std::size_t>(std::max<std::int64_t>(shards, 1)), 0.0f);
    if (shards > 0) summed_.assign(slot, 0.0f);
    const float* base = shards > 0 ? summed_.data() : fused_.data();
    std::size_t at = 0;
    for (const auto& name : grad_names_) {
      parallel_grads_.push_back({name, base + at});
      at += static_cast<std::size_t>(params_.at(name).numel());
    }
    gather_offsets_.resize(static_cast<std::size_t>(ranks) + 1);
    for (int r = 0; r <= ranks; ++r)
      gather_offsets_[static_cast<std::size_t>(r)] =
          static_cast<std::int64_t>(slot) * (std::max<std::int64_t>(shards, 1) * r / ranks);
    if (shards == 0) share_parameters();
  }
  const auto g_floats = static_cast<std::size_t>(parallel_stats_.gradient_floats);
  const std::size_t slot = g_floats + extras + u_floats + 1;
  const auto total = static_cast<std::int64_t>(rows.size());
  auto part = [&](std::int64_t k, std::int64_t parts) {
    const std::int64_t lo = total * k / parts, hi = total * (k + 1) / parts;
    return std::pair{lo, rows.subspan(static_cast<std::size_t>(lo), static_cast<std::size_t>(hi - lo))};
  };
  const double t0 = clock_seconds();
  const float* sum = nullptr;
  std::optional<double> norm;  // the optimizer's own when not set
  agreed_stop_ = false;
  if (shards == 0) {
    auto [lo, mine] = part(rank, ranks);
    std::span<float> in = comm_->sum_input(slot);  // where the others can read it, if they can
    run_part(data, mine, lo, total, step, in.data());
    in[slot - 1] = stop ? 1.0f : 0.0f;
    const double t1 = clock_seconds();
    parallel_stats_.compute_seconds += t1 - t0;
    if (!shared_params_.empty()) {
      if (!comm_->reduce_scatter_sum(in))
        throw std::logic_error("the communicator shares memory but cannot sum chunks in place");
      return shared_update(in, where, t1);
    }
    comm_->all_reduce_sum(in, fused_);
    parallel_stats_.reduce_seconds += clock_seconds() - t1;
    sum = fused_.data();
    agreed_stop_ = sum[slot - 1] > 0;
    double squares = 0;  // as shared_update adds it up, so the two give the same bits
    for (int c = 0; c < ranks; ++c) squares += chunk_squares(sum, slot, ranks, c);
    norm = std::sqrt(squares);
  } else {
    for (std::int64_t k = shards * rank / ranks; k < shards * (rank + 1) / ranks; ++k) {
      auto [lo, mine] = part(k, shards);
      float* out = fused_.data() + static_cast<std::size_t>(k) * slot;
      run_part(data, mine, lo, total, step, out);
      out[slot - 1] = stop ? 1.0f : 0.0f;
    }
    const double t1 = clock_seconds();
    comm_->all_gather(fused_, gather_offsets_);
    // Shard order on every rank: ((s_0 + s_1) + s_2) + ..., whoever computed them.
    const float* __restrict src = fused_.data();
    float* __restrict dst = summed_.data();
    parallel_for(static_cast<std::int64_t>(slot - 1), kCopyGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t j = b; j < e; ++j) {
        float acc = src[j];
        for (std::int64_t k = 1; k < shards; ++k) acc += src[static_cast<std::size_t>(k) * slot + static_cast<std::size_t>(j)];
        dst[j] = acc;
      }
    });
    for (std::int64_t k = 0; k < shards; ++k)
      agreed_stop_ = agreed_stop_ || src[static_cast<std::size_t>(k + 1) * slot - 1] > 0;
    parallel_stats_.compute_seconds += t1 - t0;
    parallel_stats_.reduce_seconds += clock_seconds() - t1;
    sum = summed_.data();
  }
  ++parallel_stats_.steps;
  step_losses_.resize(extras);
  for (std::size_t k = 0; k < extras; ++k) step_losses_[k] = sum[g_floats + k];
  // Every rank holds the same sums, so every rank takes the same decisions below.
  const double loss = step_losses_[0];
  if (!std::isfinite(loss))
    throw NumericsError(fmt::format("the loss became {} {}; the parameters are those before this "
                                    "step. Try a lower learning rate, gradient clipping, or "
                                    "--check-numerics to find the node", not_finite(loss), where()));
  check_norm(optimizer_.step(params_, parallel_grads_, norm), loss, where);
  apply_updates(sum + g_floats + extras);
  return step_losses_;
}

float Trainer::chunk_squares(const float* sum, std::size_t slot, int ranks, int c) const {
  const auto g_floats = static_cast<std::size_t>(parallel_stats_.gradient_floats);
  const auto r = static_cast<std::size_t>(ranks);
  const std::size_t b = std::min(g_floats, slot * static_cast<std::size_t>(c) / r);
  const std::size_t e = std::min(g_floats, slot * static_cast<std::size_t>(c + 1) / r);
  return static_cast<float>(ops::sum_of_squares(sum + b, static_cast<std::int64_t>(e - b)));
}

void Trainer::check_norm(double norm, double loss, FunctionRef<std::string()> where) const {
  if (!std::isfinite(norm))
    throw NumericsError(fmt::format("the gradient norm is {} {} while the loss is {}; the update "
                                    "was not applied. Try --check-numerics to find the node",
                                    not_finite(norm), where(), loss));
}

// `in` holds this rank's chunk of the sum (reduce_scatter_sum). Each rank sends the others a
// header, its chunk's squared norm and whatever of the loss, terms and stop flag falls in its
// chunk, so every rank knows them and takes the same decisions; then each updates its own
// chunk of the parameters, which all ranks hold in one shared copy (share_parameters()), reading
// the summed gradient where it lies. Adam's moments stay with the chunk's rank until the epoch
// ends (shared_state()).
const std::vector<double>& Trainer::shared_update(std::span<float> in,
                                                  FunctionRef<std::string()> where, double t1) {
  const int ranks = comm_->size(), rank = comm_->rank();
  const std::size_t extras = 1 + model_.terms.size();
  const auto g_floats = static_cast<std::size_t>(parallel_stats_.gradient_floats);
  // What follows the gradients: the loss, the terms, the buffers' new values and the stop flag.
  const std::size_t tail = extras + static_cast<std::size_t>(update_floats_) + 1;
  const std::size_t slot = g_floats + tail, width = tail + 1;
  const auto r_count = static_cast<std::size_t>(ranks);
  auto bounds = [&](int c) {
    return std::pair{slot * static_cast<std::size_t>(c) / r_count, slot * static_cast<std::size_t>(c + 1) / r_count};
  };
  if (header_.empty()) {
    header_.assign(width * r_count, 0.0f);
    header_offsets_.clear();
    param_offsets_.clear();
    for (int r = 0; r <= ranks; ++r) {
      header_offsets_.push_back(static_cast<std::int64_t>(width * static_cast<std::size_t>(r)));
      param_offsets_.push_back(static_cast<std::int64_t>(std::min(g_floats, bounds(r).first)));
    }
    flat_.assign(g_floats, 0.0f);
  }
  const auto [b, e] = bounds(rank);
  float* mine = header_.data() + width * static_cast<std::size_t>(rank);
  std::fill(mine, mine + width, 0.0f);
  mine[0] = chunk_squares(in.data(), slot, ranks, rank);
  for (std::size_t k = 0; k < tail; ++k)
    if (b <= g_floats + k && g_floats + k < e) mine[1 + k] = in[g_floats + k];
  comm_->all_gather(header_, header_offsets_);
  double squares = 0;
  for (int r = 0; r < ranks; ++r) squares += header_[width * static_cast<std::size_t>(r)];
  tail_.resize(tail);
  for (std::size_t k = 0; k < tail; ++k)
    for (int r = 0; r < ranks; ++r)
      if (auto [rb, re] = bounds(r); rb <= g_floats + k && g_floats + k < re)
        tail_[k] = header_[width * static_cast<std::size_t>(r) + 1 + k];
  agreed_stop_ = tail_[tail - 1] > 0;
  std::vector<double>& values = step_losses_;
  values.assign(tail_.begin(), tail_.begin() + static_cast<std::ptrdiff_t>(extras));
  const double t2 = clock_seconds();
  parallel_stats_.reduce_seconds += t2 - t1;
  ++parallel_stats_.steps;
  const double loss = values[0];
  if (!std::isfinite(loss))
    throw NumericsError(fmt::format("the loss became {} {}; the parameters are those before this "
                                    "step. Try a lower learning rate, gradient clipping, or "
                                    "--check-numerics to find the node", not_finite(loss), where()));
  std::size_t at = 0;
  for (GradRef& g : parallel_grads_) {  // this turn's buffer
    g.grad = in.data() + at;
    at += static_cast<std::size_t>(params_.at(g.name).numel());
  }
  const auto lo = static_cast<std::int64_t>(std::min(b, g_floats));
  const auto hi = static_cast<std::int64_t>(std::min(e, g_floats));
  check_norm(optimizer_.step(params_, parallel_grads_, std::sqrt(squares), lo, hi), loss, where);
  apply_updates(tail_.data() + extras);
  shared_state_ = true;
  // Every chunk is updated before any rank's next step reads the parameters.
  const double t3 = clock_seconds();
  comm_->barrier();
  parallel_stats_.reduce_seconds += clock_seconds() - t3;
  return step_losses_;
}

void Trainer::share_parameters() {
  const auto g_floats = static_cast<std::size_t>(parallel_stats_.gradient_floats);
  std::span<float> shared = comm_->shared_floats(g_floats);
  if (shared.empty()) return;
  // Every rank holds the same parameters (the same seed, or rank 0's checkpoint): rank 0's go
  // into the shared memory, and every rank's tensors become views of it.
  std::size_t at = 0;
  for (const auto& name : grad_names_) {
    const Tensor& t = params_.at(name);
    if (comm_->rank() == 0) std::memcpy(shared.data() + at, t.raw(), t.bytes());
    at += static_cast<std::size_t>(t.numel());
  }
  comm_->barrier();
  at = 0;
  for (const auto& name : grad_names_) {
    Tensor& t = params_.at(name);
    t = Tensor::view(DType::f32, t.shape(), shared.data() + at);
    at += static_cast<std::size_t>(t.numel());
  }
  shared_params_ = shared;
}

void Trainer::shared_state() {
  if (!shared_state_) return;
  for (std::size_t kind = 0; kind < optimizer_.state_kinds(); ++kind) {
    optimizer_.state_out(kind, flat_);
    comm_->all_gather(flat_, param_offsets_);
    optimizer_.state_in(kind, flat_);
  }
  shared_state_ = false;
}

bool Trainer::parameters_agree() {
  if (comm_->size() == 1) return true;
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a over every parameter's bytes, by name
  for (const auto& [name, t] : params_) {
    const auto* bytes = static_cast<const unsigned char*>(t.raw());
    for (std::size_t i = 0; i < t.bytes(); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  }
  std::vector<std::byte> leader(sizeof hash);
  std::memcpy(leader.data(), &hash, sizeof hash);
  comm_->broadcast(leader, 0);
  return !comm_->any(std::memcmp(leader.data(), &hash, sizeof hash) != 0);
}

}  // namespace graphrun
