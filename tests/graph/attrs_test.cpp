// Attributes: typed reads that name the key on a mistake.
#include <graphrun/graph/attrs.hpp>

#include <catch2/catch.hpp>

namespace graphrun {
namespace {

TEST_CASE("attributes read back with their types", "[graph][attrs]") {
  Attrs a{{"axis", std::int64_t{2}}, {"keep", 0.25}, {"axes", std::vector<std::int64_t>{0, 1}}};
  CHECK(a.i("axis") == 2);
  CHECK(a.f("keep") == 0.25);
  CHECK(a.f("axis") == 2.0);  // an integer reads as a double
  CHECK(a.ints("axes") == std::vector<std::int64_t>{0, 1});
  CHECK(a.i_or("missing", 7) == 7);
  CHECK(a.f_or("keep", 1.0) == 0.25);
  CHECK(a.to_string() == "{axes=[0, 1], axis=2, keep=0.25}");
  CHECK(Attrs{}.to_string() == "{}");
  a.set("axis", std::int64_t{3});
  CHECK(a.i("axis") == 3);
}

TEST_CASE("wrong keys and types name the key", "[graph][attrs]") {
  Attrs a{{"keep", 0.25}};
  CHECK_THROWS_WITH(a.i("keep"), Catch::Contains("'keep'"));
  CHECK_THROWS_WITH(a.ints("keep"), Catch::Contains("'keep'"));
  CHECK_THROWS_WITH(a.f("rho"), Catch::Contains("missing attribute 'rho'"));
  CHECK_THROWS_AS(a.i("rho"), std::invalid_argument);
}

}  // namespace
}  // namespace graphrun
