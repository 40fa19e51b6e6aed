// Package silicon holds the materials physics of crystalline silicon that the
// implant and anneal models share: carrier mobility, sheet resistance and
// junction depth of a doping profile, dopant diffusivities and thermal
// budget, dry thermal oxidation and a rough activation model.
//
// Every function is pure and deterministic. Units follow the project's
// physics reference: depths in nm unless a name
// says otherwise, concentrations in cm⁻³, diffusivities in cm²/s,
// temperatures in °C, times in s.
//
// Sources, as the reference cites them:
//   - Mobility: G. Masetti, M. Severi, S. Solmi, IEEE Trans. Electron
//     Devices 30, 764 (1983), parameters as in Sandia's Charon TCAD.
//   - Sheet resistance: the integral that replaces J. C. Irvin's curves,
//     Bell Syst. Tech. J. 41, 387 (1962).
//   - Diffusivities: J. D. Plummer, M. D. Deal, P. B. Griffin, Silicon VLSI
//     Technology (2000), ch. 7 (single Arrhenius, effective intrinsic), and
//     R. B. Fair's charged-species model as the defaults of Stanford
//     SUPREM-IV.GS.
//   - Oxidation: B. E. Deal, A. S. Grove, J. Appl. Phys. 36, 3770 (1965),
//     rate constants and the Massoud-type thin-oxide term as the defaults
//     of SUPREM-IV.GS.
//   - Activation: a logistic fit to sparse literature points (Bell Labs
//     1999; MRS Proc. 669 J8.1); rough, see Activation.
//
// The package example turns an annealed Gaussian implant into σ, xj and
// its activation.
package silicon
