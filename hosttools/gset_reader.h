// Readers for MAX-CUT graphs in the G-set / rudy text format, for general Ising
// problems, and for spin assignments; and the writer of an assignment.
//
// G-set / rudy graph (Helmberg & Rendl; Y. Ye's G-set page; ../shared/gset/README.md):
//     n m
//     i j w        m lines: 1-based nodes i, j in [1, n], weight w (integer or real)
// Ising couplings (`eqprop solve --problem ising --couplings FILE`), same layout:
//     n m
//     i j J_ij     m lines: 1-based spins, the coupling of E = -sum J_ij s_i s_j - sum h_i s_i
//     h i h_i      any number of field lines, anywhere after the header (h = 0 otherwise)
// Both: tokens are separated by spaces or tabs; blank lines and lines starting with
// '#' or '%' are ignored; trailing spaces (the G-set files have one after m) are
// fine. A pair listed twice is two terms whose weights add (parallel edges of a
// multigraph add to the cut); a field given twice adds too.
// Rejected with a DataError naming the file and line: a missing or unreadable file,
// a directory, FIFO or device (refused before reading: a FIFO would block), a
// header that is not two integers n >= 1 and m >= 0 (an Ising file's n at most
// kMaxDenseSpins, the solvers' limit, checked before anything is sized by n), a line that is not
// `i j value` (or `h i value`) with integer nodes and a finite number, a node outside
// [1, n], a self loop i == j (a node cannot be cut from itself, and s_i s_i = 1 is only
// a constant in the energy: almost surely a mistake in the file), and a number of
// pair lines other than m.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/ising_problem.h"

namespace eqprop {

Graph read_gset_graph(const std::string& path);
IsingProblem read_ising_couplings(const std::string& path);

// A spin assignment: `spins` values +1 or -1 (written 1, +1 or -1), separated by
// commas and/or whitespace (the ../shared/gset/*_ref_cut.txt files are one
// comma-separated line; write_spin_assignment writes one value per line).
// DataError on another value or another count.
std::vector<std::int8_t> read_spin_assignment(const std::string& path, int spins);

// One value per line, "1" or "-1", line k for node (spin) k (1-based), written
// atomically (engine/atomic_file.h).
void write_spin_assignment(const std::string& path, const std::vector<std::int8_t>& spins);

}  // namespace eqprop
