// Data-parallel EP on CUDA (engine/distributed.h): the CUDA backend hands the
// engine its compute stream, so that with NCCL and several ranks the contrastive
// update and the metrics are summed on the device; two ranks on two GPUs then
// train the parameters of one GPU with the same global batch, up to the order of
// the float sums. Skips without a GPU; the 2-rank case also without a second GPU,
// NCCL, mpirun or the Fashion-MNIST data.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/distributed.h"
#include "kernels/backend.h"
#include "kernels/cuda_backend.h"
#include "tests/mpi_runs.h"
#include "tests/skip.h"
#include "tests/test_util.h"

namespace eqprop {
namespace {

int visible_gpus() {
#if defined(EQPROP_HAVE_CUDA)
  return cuda_device_count();
#else
  return 0;
#endif
}

}  // namespace

TEST_CASE("cuda distributed: the CUDA backend offers its stream, so several ranks sum on the device with NCCL") {
  if (test::skip_without_gpu()) return;
  auto backend = make_backend("cuda");
  CHECK(backend->native_stream() != nullptr);
  const bool nccl = Distributed::built_with_nccl();
  MESSAGE("built with NCCL: " << (nccl ? "yes" : "no"));
  CHECK(choose_reduction_path(2, backend->native_stream() != nullptr, nccl) ==
        (nccl ? ReductionPath::device_nccl : ReductionPath::host_mpi));
  CHECK(Distributed::world().reduction_path(*backend) == ReductionPath::single_rank);  // this process is one rank
}

TEST_CASE("cuda distributed: 2 ranks on 2 GPUs sum through NCCL and train the parameters of 1 GPU") {
  if (test::skip_without_gpu()) return;
  const int gpus = visible_gpus();
  if (test::skip_case_if(gpus < 2, std::to_string(gpus) + " CUDA GPU visible; the 2-rank NCCL case needs 2")) return;
  if (test::skip_case_if(!Distributed::built_with_nccl(), "this build has no NCCL")) return;
  if (test::skip_without_mpirun_or_data()) return;
  test::TempDir dir;
  const std::string single = dir.file("single"), ranks = dir.file("ranks"), log = dir.file("ranks.log");
  REQUIRE(test::run_command(std::string(EQPROP_CLI_PATH) + test::train_args(single, "cuda")) == 0);
  REQUIRE(std::system((std::string(test::kMpirun) + " -np 2 " + EQPROP_CLI_PATH + test::train_args(ranks, "cuda") +
                       " > " + log + " 2>&1")
                          .c_str()) == 0);
  CHECK(test::file_text(log).find("sums on the device with NCCL") != std::string::npos);
  // As on the CPU (tests/test_distributed.cpp): only the order of the float sums
  // differs, here of the GPU's GEMMs over half the rows and of NCCL's reduction.
  const double worst = test::largest_parameter_difference(single, ranks);
  MESSAGE("largest parameter difference, 1 vs 2 GPUs: " << worst);
  CHECK(worst < 1e-4);
  CHECK(std::fabs(test::test_accuracy(single) - test::test_accuracy(ranks)) <= 0.001);
}

}  // namespace eqprop
