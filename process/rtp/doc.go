// Package rtp simulates rapid thermal processing of a 300 mm wafer in a
// lamp-heated chamber, controls its temperature with a PID or an MPC, and
// reports the run's metrics, virtual metrology and artifacts. Engine
// implements process.Engine; Tune auto-tunes the controller by relay
// feedback. Pure and deterministic: no I/O, no clock, no goroutines; every
// random draw comes from a PCG seeded with process.Options.Seed.
// ExampleNewEngine drives a run from recipe to results.
//
// # Models (§ numbers: sections of the project's physics reference)
//
// Wafer (§4.1): a lumped energy balance
//
//	m·cp(T)·dT/dt = α(T)·P_lamp − 2A·ε(T)·σ(T⁴ − T_w⁴) − h·A·(T − T_gas)
//
// with m = 127.6 g and A = 0.07069 m² per face (300 mm × 775 µm), cp(T)
// from the NIST Shomate equation for Si (Chase 1998), ε(T) rising from 0.5
// (cold, lightly doped Si is semi-transparent) to 0.68 above ≈600 °C, the
// lamp coupling α(T) = 0.45·ε(T)/0.68 (Kirchhoff), walls at 300 K and a
// small convective loss that grows with the gas flow. The lamps are
// 100 kW electrical behind a first-order filament lag τ_L = 0.2 s, so the
// linearised plant at 1000 °C is ≈10 °C per kW with τ ≈ 2.8 s (§4.2).
// The state is integrated by RK4 in 10 ms steps. The pyrometer (§4.2) is
// a 50 ms first-order filter plus 0.3 °C rms noise (more below 500 °C).
//
// Set-points: each segment ramps from the current set-point to its target
// at ramp_rate_c_s, then holds it for duration_s. A step (no ramp rate)
// ramps at the tool's limit, 100 °C/s up or 50 °C/s down.
//
// PID (§5.3): parallel form on the error in % of a 1000 °C pyrometer span
// (so the recipe's pid_kp is dimensionless, pid_ki in 1/s, pid_kd in s),
// derivative on the measurement filtered with N = 10, clamping anti-windup,
// integration only while the set-point holds, and a model feed-forward of
// the steady-state plus ramp power (loss(r) + m·cp·dr/dt)/(α·P_max).
//
// MPC (§5.4): DMC/GPC on a gain-scheduled FOPDT model (K(T), τ(T) from the
// wafer model, d = 2 steps of dead time for lamp lag and pyrometer), Np =
// 30, four blocked moves, λ = 20, a model-inverse feed-forward along the
// previewed set-point, an output-disturbance estimate for zero offset, and
// the 0–100 % lamp limit by clipping.
//
// Tuning (§5.1–5.2, docs/tuning.md): a relay of ±5 % lamp power with
// ±1 °C hysteresis at the recipe's peak temperature gives Ku and Pu, an
// open-loop lamp step the static gain, and the two an FOPDT model
// (IdentifyFOPDT). The rule table (Ziegler–Nichols, Tyreus–Luyben,
// Ciancone–Marlin, Pessen, some/no overshoot) and the model rules (SIMC,
// IMC) give starting gains; each runs the user's own recipe through the
// engine, and a pattern search minimises the target (overshoot, ramp
// error or settling) with the other two held near the recipe's own gains.
// The prediction is the mean of eight noise seeds, beside the recipe's own
// gains on the same seeds; the tuner never returns worse than it got. MPC
// tuning searches the horizon and move weight (mpc_horizon,
// mpc_move_weight).
//
// Monitoring learns its limits from the run itself (docs/monitoring.md);
// ramps are not charted. In settled holds at ≥ 500 °C a 100 ms jump of the
// tracking error beyond 8σ̂ of its increments (σ̂ learned from the first
// 20) is a sensor step: the reading jumping up raises PYROMETER_OFFSET,
// down EMISSIVITY_CHANGE. In settled holds at ≥ 600 °C the lamp power
// against the set-point model's steady power (in % lamp) goes to a learned
// chart (8 s baseline, 6σ̂ limit, CUSUM k = max(½, 1 %/2σ̂), h = 8): more
// power than before raises LAMP_DEGRADATION, less LAMP_RESIDUAL (not
// after a sensor step, which explains it). The gas flow reading against
// its first 5 s raises GAS_FLOW beyond 6σ̂ (σ̂ ≥ 0.5 % of the set flow).
// Lamp saturation for 1 s and a settled hold more than 10 °C off raise FDC
// alarms. Alarms are rate-limited to one per source, parameter and rule
// every 10 s of process time, at most 50 per run.
//
// Metrology (§2, §3): the thermal budget Dt = ∫D(T(t))dt of the implanted
// species over the measured trace (cm², Plummer's effective intrinsic
// diffusivities, process/silicon); activation from the peak and the
// effective time at it; the implant engine's own as-implanted profile
// (ion.AsImplanted: its range tables and Pearson shape; energies outside
// the tables are refused with a warning, In has its own ranges) broadened
// by √(2Dt) for junction depth and sheet resistance (Masetti mobility); oxide from SUPREM-IV's thin-oxide Deal–Grove model when O2
// flows, the 1.2 nm native oxide otherwise.
//
// Run-to-run: Options.R2R may carry temp_offset_c (moves the peak
// segments) and hold_offset_s (lengthens the last peak segment). Each run
// recommends the next hold_offset_s with an EWMA (λ = 0.3, process/r2r)
// on the effective-time error at the peak, and reports its observations
// (temp_error_c, max_overshoot_c, avg_ramp_error_c, …) for SPC across runs.
package rtp
