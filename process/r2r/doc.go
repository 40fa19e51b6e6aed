// Package r2r is run-to-run control: EWMA and double-EWMA controllers that
// learn a process offset from each run's measurement and recommend the
// recipe correction for the next run.
//
// The process model is y = α + β·u + ε, with u the correction applied to a
// run and y its measured output; the controller holds a gain estimate b
// and an offset estimate a, and recommends u = (T − a)/b for target T.
// Sources, as the project's physics reference (§5.5) cites them:
// E. Sachs, A. Hu, A. Ingolfsson, IEEE Trans. Semicond. Manuf. 8(1), 26
// (1995); A. Ingolfsson, E. Sachs, J. Quality Technology 25(4), 271 (1993)
// for the EWMA controller and its stability condition 0 < λβ/b < 2;
// S. W. Butler, J. A. Stefani, IEEE Trans. Semicond. Manuf. 7(2), 193 (1994)
// for the double EWMA, which also removes the offset a linear drift leaves.
//
// Controllers are values: Update returns the next state, so a projection can
// store one per thread (tool × recipe × product) and replay it
// deterministically (see ExampleEWMA).
package r2r
