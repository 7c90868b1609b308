// What a run leaves behind besides its checkpoint: per-epoch metrics as JSON lines and CSV, and
// the figures (reconstructions, prior samples, the latent manifold and scatter, loss curves).
// Every file is written atomically, so a run killed at any moment leaves whole files.
#pragma once

#include <graphrun/train/dataset.hpp>
#include <graphrun/train/image.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/trainer.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

// metrics.jsonl and metrics.csv in a run folder, one row per epoch with the same flat columns:
//   epoch, step, train_loss, train_<term>..., test_loss, test_<term>..., seconds,
//   samples_per_second
class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path dir);

  // Reads <dir>/metrics.jsonl, keeping rows with epoch <= up_to (a resumed run continues from
  // its checkpoint's epoch). A missing file gives no rows. Throws DataError naming the file and
  // line for a row that does not parse.
  void load(std::int64_t up_to_epoch);
  void add(const EpochReport& report);
  // Rewrites both files atomically (IoError on failure).
  void write() const;

  const std::vector<EpochReport>& rows() const { return rows_; }
  std::filesystem::path jsonl_path() const { return dir_ / "metrics.jsonl"; }
  std::filesystem::path csv_path() const { return dir_ / "metrics.csv"; }

 private:
  std::filesystem::path dir_;
  std::vector<EpochReport> rows_;
};

// Legend names for a data set's labels: the ones its files give (image folders, CIFAR-10, CSV
// label text), Fashion-MNIST's ten classes, MNIST's digits, else none (the plots show numbers).
std::vector<std::string> class_names(const Dataset& data);

// Train and test loss per epoch.
Image loss_figure(const std::vector<EpochReport>& rows, const std::string& title);
// The first `count` images of `data` (one row) over their reconstructions (the row below). For a
// denoising model three rows: the images, the same with the model's training noise
// (Inference::corrupt) and the reconstructions of the noisy ones.
Image reconstruction_figure(Inference& inference, const Split& data, int count);
// `side` x `side` decoded draws from the prior (throws std::logic_error without a prior); a
// conditional model decodes class `cls`, or the classes in turn (Inference::sample).
Image sample_figure(Inference& inference, const Split& shape, int side, std::uint64_t seed,
                    std::optional<std::int64_t> cls = {});
// For a 2-D latent: a side x side grid decoded at the standard normal's quantiles
// 0.05 .. 0.95 of each axis (Kingma & Welling's figure 4); z1 grows rightwards, z2 upwards. A
// conditional model decodes class 0.
Image manifold_figure(Inference& inference, const Split& shape, int side);
// Codes [n, k] scattered by label: the two coordinates when k == 2, else the first two
// principal components (the title says which).
Image latent_figure(std::span<const float> codes, std::int64_t n, std::int64_t k,
                    const std::vector<std::int64_t>& labels, const std::vector<std::string>& names,
                    const std::string& title);
// `pairs` rows: image a, `steps` decodes along the line from code(a) to code(b), image b; the
// pairs are consecutive images of `data` with different labels where possible. A conditional
// model encodes each image with its label and decodes the line as class `cls`, or as image a's.
Image interpolation_figure(Inference& inference, const Split& data, int pairs, int steps,
                           std::optional<std::int64_t> cls = {});
// The images of `data` at `indices`, in that order, `grid_cols` per row.
Image images_figure(const Split& data, const std::vector<std::int64_t>& indices, int grid_cols);

// CSV "index,label,z1..zK" for codes [n, k] of the first n images of `data`.
void write_codes_csv(const std::filesystem::path& path, const Tensor& codes, const Split& data);
// CSV "index,label,score,rank" (rank 1 = highest score).
void write_scores_csv(const std::filesystem::path& path, const std::vector<double>& scores,
                      const Split& data);

// The file names write_training_figures writes for `model` and `data`, in order, so that a run
// can tell which figures it lacks without drawing them.
std::vector<std::string> training_figure_names(const Model& model, const Dataset& data);

// The figures a finished training run writes into `dir`: loss.png, reconstructions.png, and
// samples.png (models with a prior); manifold.png (prior and 2-D code); latent.png (2-D code) or
// latent_pca.png (larger codes). Returns the files written.
std::vector<std::filesystem::path> write_training_figures(
    const std::filesystem::path& dir, Inference& inference, const Dataset& data,
    const std::vector<EpochReport>& rows, const Model& model, std::uint64_t seed);

}  // namespace graphrun
