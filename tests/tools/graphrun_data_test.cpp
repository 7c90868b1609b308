// End-to-end: the user's own data through the real binary (issue 21): NumPy arrays with labels
// and a held-out fraction, CSV tables with named classes, folders of RGB pictures viewed as
// images by a graph file, CIFAR-10 batches, one-class training scored by AUROC, and the errors
// for data a model cannot take.
#include "tools/cli_harness.hpp"

#include <graphrun/train/image.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

namespace graphrun::testing {
namespace {

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// An .npy file as numpy.save writes it: magic, version 1.0, a header padded to 64 bytes.
void write_npy(const fs::path& path, const std::string& descr, const std::vector<std::int64_t>& shape,
               const void* data, std::size_t bytes) {
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.erase(dims.size() - 2);
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const auto n = static_cast<std::uint16_t>(header.size());
  out.put(static_cast<char>(n & 0xff)).put(static_cast<char>(n >> 8));
  out << header;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
}

// Two clusters of 6 features in the data's own units (hundreds, offset): standardizing matters.
// Class 1 is the rare one, an anomaly against class 0.
void write_table_npy(const fs::path& dir, std::int64_t n) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> x;
  std::vector<std::int64_t> y;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t label = i % 5 == 4 ? 1 : 0;
    y.push_back(label);
    for (int j = 0; j < 6; ++j)
      x.push_back(500.0f + 100.0f * (label ? static_cast<float>(j % 2 ? 3 : -3) : 0.0f) + 40.0f * noise(rng));
  }
  write_npy(dir / "x.npy", "<f4", {n, 6}, x.data(), x.size() * sizeof(float));
  write_npy(dir / "y.npy", "<i8", {n}, y.data(), y.size() * sizeof(std::int64_t));
}

// 8x8 RGB pictures: class "red" is reddish, class "blue" bluish, with noise.
void write_picture_folder(const fs::path& dir, int per_class, std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (const char* cls : {"blue", "red"}) {
    fs::create_directories(dir / cls);
    for (int i = 0; i < per_class; ++i) {
      Image im(8, 8);
      for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) {
          auto n = static_cast<std::uint8_t>(rng() % 40);
          bool red = std::string(cls) == "red";
          im.set(x, y, {static_cast<std::uint8_t>(red ? 200 + n : n), n, static_cast<std::uint8_t>(red ? n : 200 + n)});
        }
      write_png(dir / cls / ("p" + std::to_string(i) + ".png"), im);
    }
  }
}

const char* kTinyAe = R"([model]
code = 3
[graph]
input x [B, D]
input z [B, code]
def dense(v, n, name) = v @ param(name + ".w", [dim(v, 1), n], xavier_uniform) + param(name + ".b", [n], zeros)
def decode(v) = dense(tanh(dense(v, 16, "dec1")), D, "dec2")
c = dense(tanh(dense(x, 16, "enc1")), code, "enc2")
recon = sum(square(decode(c) - x), axes=[1])
role loss = recon
term recon = recon
role code = c
role reconstruction = decode(c)
role decoded = decode(z)
)";

// A graph that asks for images: C, H and W come from the data.
const char* kTinyConv = R"([model]
code = 4
[graph]
input x [B, C, H, W]
input z [B, code]
w1 = param("enc.w", [4, C, 3, 3], he_uniform)
h = reshape(relu(conv2d(x, w1, stride=[2, 2], padding=[1, 1])), shape=[B, 4 * (H / 2) * (W / 2)])
c = h @ param("code.w", [4 * (H / 2) * (W / 2), code], xavier_uniform)
def decode(v) = reshape(v @ param("dec.w", [code, C * H * W], xavier_uniform), shape=[B, C, H, W])
recon = sum(bce_with_logits(decode(c), x), axes=[1, 2, 3])
role loss = recon
term recon = recon
role code = c
role reconstruction = sigmoid(decode(c))
role decoded = sigmoid(decode(z))
)";

}  // namespace

TEST_CASE("NumPy arrays train with their labels, a held-out fraction and standardization", "[e2e][data]") {
  TempDir tmp;
  write_table_npy(tmp.path(), 200);
  std::ofstream(tmp / "ae.graph") << kTinyAe;
  std::vector<std::string> data{"--data.train", "x.npy", "--data.labels", "y.npy", "--data.test_fraction",
                                "0.25", "--data.normalize", "standardize", "--batch", "16"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), data.begin(), data.end());
    return args;
  };
  auto train = run_cli_process(with({"ae.graph", "--epochs", "3"}), tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("150 train / 50 test samples of 6, standardized"));
  fs::path run = tmp / "runs" / "ae.graph";
  CHECK(fs::exists(run / "loss.png"));
  CHECK_FALSE(fs::exists(run / "reconstructions.png"));  // a table has no pictures
  // The standardization lives in the checkpoint: mean near 500 for every feature.
  auto meta = load_safetensors(run / "checkpoint.safetensors").metadata;
  auto norm = nlohmann::json::parse(meta.at("normalization"));
  CHECK(norm["mode"] == "standardize");
  REQUIRE(norm["offset"].size() == 6);
  CHECK(norm["offset"][0].get<double>() > 450);
  CHECK(norm["offset"][0].get<double>() < 600);

  auto recon = run_cli_process(with({"reconstruct", "ae.graph", "--count", "4"}), tmp.path());
  INFO(describe(recon));
  REQUIRE(recon.code == 0);
  auto csv = lines_of(read(run / "reconstructions.csv"));
  REQUIRE(csv.size() == 5);
  CHECK(csv[0] == "index,label,x1,x2,x3,x4,x5,x6,r1,r2,r3,r4,r5,r6");
  // In the data's units again: values in the hundreds, not standardized ones near 0.
  CHECK(std::stod(csv[1].substr(csv[1].find(',', csv[1].find(',') + 1) + 1)) > 100);

  auto anomaly = run_cli_process(with({"anomaly", "ae.graph", "--normal-classes", "0"}), tmp.path());
  INFO(describe(anomaly));
  REQUIRE(anomaly.code == 0);
  CHECK_THAT(anomaly.out, Catch::Contains("AUROC"));
  auto scores = nlohmann::json::parse(read(run / "anomaly.json"));
  CHECK(scores["samples"] == 50);
  // The rare cluster is far from what the model reconstructs well.
  CHECK(scores["auroc"].get<double>() > 0.8);

  CHECK(run_cli_process(with({"interpolate", "ae.graph"}), tmp.path()).code == 2);
  auto samples = run_cli_process(with({"encode", "ae.graph"}), tmp.path());
  CHECK(samples.code == 0);
}

TEST_CASE("a CSV table with a named label column trains and names its classes", "[e2e][data]") {
  TempDir tmp;
  std::ofstream csv(tmp / "t.csv");
  csv << "a,b,kind,c\n";
  for (int i = 0; i < 60; ++i)
    csv << (i % 3) * 0.5 << "," << (i % 7) * 0.1 << "," << (i % 2 ? "cat" : "dog") << "," << i * 0.01 << "\n";
  csv.close();
  std::ofstream(tmp / "ae.graph") << kTinyAe;
  auto train = run_cli_process({"ae.graph", "--epochs", "1", "--batch", "16", "--data.train", "t.csv",
                                "--data.labels", "kind", "--data.classes", "1"},
                               tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("30 train / 0 test samples of 3"));  // dog: class 1 of cat, dog

  std::ofstream bad(tmp / "bad.csv");
  bad << "a,b\n1,2\n3,x\n";
  bad.close();
  auto refused = run_cli_process({"ae.graph", "--data.train", "bad.csv"}, tmp.path());
  CHECK(refused.code != 0);
  CHECK_THAT(refused.err, Catch::Contains("bad.csv:3") && Catch::Contains("'x'"));
}

TEST_CASE("a folder of RGB pictures trains a graph that asks for [B, C, H, W]", "[e2e][data]") {
  TempDir tmp;
  write_picture_folder(tmp / "pics" / "train", 12, 1);
  write_picture_folder(tmp / "pics" / "test", 4, 2);
  std::ofstream(tmp / "conv.graph") << kTinyConv;
  auto train = run_cli_process({"conv.graph", "--epochs", "2", "--batch", "8", "--data", "pics"}, tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("24 train / 8 test images of 3x8x8"));
  fs::path run = tmp / "runs" / "conv.graph";
  REQUIRE(fs::exists(run / "reconstructions.png"));
  // The latent plot names the classes by their folders.
  auto anomaly = run_cli_process({"anomaly", "conv.graph", "--data", "pics", "--normal-classes", "0"}, tmp.path());
  INFO(describe(anomaly));
  CHECK(anomaly.code == 0);
  CHECK_THAT(anomaly.out, Catch::Contains("blue") || Catch::Contains("red"));

  // The same graph on rows of a table: x cannot be viewed as images.
  write_table_npy(tmp.path(), 20);
  auto refused = run_cli_process({"conv.graph", "--data.train", "x.npy"}, tmp.path());
  CHECK(refused.code == 2);
  CHECK_THAT(refused.err, Catch::Contains("conv.graph:4") && Catch::Contains("[B, C, H, W]"));
}

TEST_CASE("CIFAR-10 batches train a graph with colour images", "[e2e][data]") {
  TempDir tmp;
  fs::create_directories(tmp / "cifar");
  std::mt19937 rng(3);
  for (const char* name : {"data_batch_1.bin", "test_batch.bin"}) {
    std::ofstream out(tmp / "cifar" / name, std::ios::binary);
    for (int i = 0; i < 10; ++i) {
      out.put(static_cast<char>(i % 10));
      for (int k = 0; k < 3072; ++k) out.put(static_cast<char>(rng() % 256));
    }
  }
  std::ofstream(tmp / "conv.graph") << kTinyConv;
  auto train = run_cli_process({"conv.graph", "--epochs", "1", "--batch", "5", "--data", "cifar"}, tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  CHECK_THAT(train.out, Catch::Contains("10 train / 10 test images of 3x32x32"));
}

TEST_CASE("one class of the IDX set trains, and anomaly scores the rest by AUROC", "[e2e][data]") {
  TempDir tmp;
  std::ofstream(tmp / "ae.graph") << kTinyAe;
  std::vector<std::string> data{"--data", tiny_dataset().string(), "--data.classes", "3", "--batch", "16"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), data.begin(), data.end());
    return args;
  };
  auto train = run_cli_process(with({"ae.graph", "--epochs", "2"}), tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  auto anomaly = run_cli_process(with({"anomaly", "ae.graph"}), tmp.path());
  INFO(describe(anomaly));
  REQUIRE(anomaly.code == 0);
  CHECK_THAT(anomaly.out, Catch::Contains("normal classes 3"));
  auto j = nlohmann::json::parse(read(tmp / "runs" / "ae.graph" / "anomaly.json"));
  CHECK(j["auroc"].get<double>() > 0.5);
  CHECK(j["normal_classes"] == std::vector<int>{3});
}

}  // namespace graphrun::testing
