"""The app and what it is made of: the app class, its key groups (blind votes, models, quality,
results), help, the model picker, the replay app, the garbage-collection policy, the lifeline."""
