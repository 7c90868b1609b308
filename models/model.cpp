#include <graphrun/models/model.hpp>
#include <graphrun/ops/ops.hpp>

#include <fmt/format.h>

namespace graphrun {

Value moving_average(std::vector<BufferUpdate>& updates, std::string name, Value value,
                     double momentum, Init init, std::source_location at) {
  if (!(momentum > 0 && momentum <= 1))
    throw std::invalid_argument(fmt::format("the moving average '{}' needs a momentum in (0, 1], got {}", name, momentum));
  Value average = value.graph().buffer(std::move(name), value.shape(), init, at);
  updates.push_back({average, moving_average_update(average, value, momentum, at)});
  return average;
}

Value moving_average_update(Value average, Value value, double momentum, std::source_location at) {
  Value step = sub(stop_gradient(value, at), average, at);
  return add(average, mul(step, average.graph().scalar(momentum, at), at), at);
}

}  // namespace graphrun
