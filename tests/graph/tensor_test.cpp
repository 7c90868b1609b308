// Tensors: shapes, conversion, views, and the empty (default) tensor.
#include <graphrun/graph/tensor.hpp>

#include <catch2/catch.hpp>

#include <cstdint>

namespace graphrun {
namespace {

TEST_CASE("tensors are zero-filled, aligned and typed", "[graph][tensor]") {
  Tensor t(DType::f32, {3, 5});
  CHECK(t.numel() == 15);
  CHECK(t.bytes() == 60);
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw()) % kAlignment == 0);
  for (float v : t.values<float>()) CHECK(v == 0.0f);
  CHECK_THROWS_WITH(t.data<double>(), Catch::Contains("float32") && Catch::Contains("float64"));
  CHECK(to_string(t.shape()) == "[3, 5]");
  CHECK(to_string(Shape{}) == "[]");
  CHECK(numel(Shape{}) == 1);
  CHECK(numel(Shape{4, 0}) == 0);
}

TEST_CASE("clone copies, copies share, to converts", "[graph][tensor]") {
  Tensor a(DType::f64, {2});
  a.data<double>()[0] = 1.25;
  a.data<double>()[1] = -3.5;
  Tensor shared = a;
  Tensor copy = a.clone();
  a.data<double>()[0] = 7;
  CHECK(shared.item(0) == 7);
  CHECK(copy.item(0) == 1.25);
  Tensor f = copy.to(DType::f32);
  CHECK(f.dtype() == DType::f32);
  CHECK(f.item(1) == -3.5);
  CHECK(f.to(DType::f64).item(0) == 1.25);
  CHECK_THROWS_AS(f.item(2), std::out_of_range);
  CHECK_THROWS_AS(f.item(-1), std::out_of_range);
}

TEST_CASE("reshaped keeps the data and checks the count", "[graph][tensor]") {
  Tensor a(DType::f32, {2, 3});
  a.data<float>()[5] = 9;
  Tensor b = a.reshaped({3, 2});
  CHECK(b.shape() == Shape{3, 2});
  CHECK(b.item(5) == 9);
  CHECK_THROWS_AS(a.reshaped({4}), ShapeError);
}

TEST_CASE("a view uses caller memory", "[graph][tensor]") {
  double data[4] = {1, 2, 3, 4};
  Tensor v = Tensor::view(DType::f64, {2, 2}, data);
  data[3] = 40;
  CHECK(v.item(3) == 40);
  CHECK(v.clone().item(3) == 40);
}

TEST_CASE("an empty tensor clones and converts to an empty tensor", "[graph][tensor]") {
  Tensor empty;
  CHECK(empty.empty());
  CHECK(empty.clone().empty());
  CHECK(empty.to(DType::f64).empty());
  CHECK_THROWS_AS(empty.item(), std::out_of_range);
}

TEST_CASE("shapes over rank 4 or with negative sizes are refused", "[graph][tensor]") {
  CHECK_THROWS_AS(Tensor(DType::f32, {1, 1, 1, 1, 1}), ShapeError);
  CHECK_THROWS_AS(Tensor(DType::f32, {-2}), ShapeError);
  CHECK_NOTHROW(Tensor(DType::f32, {0, 3}));
}

}  // namespace
}  // namespace graphrun
