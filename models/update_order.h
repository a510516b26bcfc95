// The order in which one relaxation step updates the state layers of a layered
// network (DESIGN.md §1, dynamics).
// - synchronous: every field from the states of the previous step, then every
//   layer moves (Laborieux et al. 2021: T1 = 250, T2 = 2 x 25 on CIFAR-10).
// - asynchronous: the odd state layers (the first hidden layer is layer 1) move
//   from their neighbours, then the even ones from the NEW odd ones (Scellier et
//   al. 2023: T1 = 60, T2 = 2 x 20 for the same accuracy). The layers of one
//   parity are coupled only to the other parity, so each half of the step is a
//   block update; with the fixed-point map it is the exact minimiser of E over
//   the moving layers given the others, so E never increases, and the teaching
//   signal climbs two layers per step instead of one (Kerjan, Hoier & Scellier
//   2026). For gradient flow and cSB it is the Gauss-Seidel ordering of the same
//   per-layer steps.
#pragma once

namespace eqprop {

enum class UpdateOrder : int { synchronous = 0, asynchronous = 1 };

// One step moves group 0, then group 1, ...: group g is the state layers i (0 the
// first hidden layer) with i % groups == g, and its fields are computed from the
// latest states before any of its layers moves. Synchronous: one group, every
// layer; asynchronous: {0, 2, ...} (the odd layers), then {1, 3, ...}.
inline int update_group_count(UpdateOrder order) { return order == UpdateOrder::asynchronous ? 2 : 1; }

}  // namespace eqprop
