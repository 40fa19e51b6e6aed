// Package fab holds Spectra's fab operations: the recipe library (named,
// versioned recipes of an organisation with an approval step), lots (one
// run per wafer from a library recipe) and schedules (a recipe or lot at a
// time or on a cron expression).
//
// Each is an aggregate on its own stream (recipe-<org>-<name>, lot-<id>,
// schedule-<id>): a pure fold of its events (Apply) and decisions that
// return the events a command causes, or an error. The Service loads a
// stream, decides, and appends with the expected revision, so two writers
// (two nodes firing one schedule slot, two engineers saving one recipe)
// never both win.
//
//	svc := fab.NewService(store, actorsService, validators, fab.Options{TimeScale: 60})
//	r, _, err := svc.SaveRecipe(ctx, fab.SaveRecipe{Name: "boron_5kev", Kind: process.KindIon, Recipe: raw, Meta: md})
//	r, _, err = svc.ApproveRecipe(ctx, fab.ApproveRecipe{Name: "boron_5kev", Version: 1, Meta: adminMD})
//	lot, err := svc.CreateLot(ctx, fab.CreateLot{Recipe: events.RecipeRef{Name: "boron_5kev"}, Wafers: 25, Meta: md})
package fab
