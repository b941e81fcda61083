from rnnkit.tasks.demo import DemoConfig, run_demo


def test_demo_learns_far_below_the_mean_predictor():
    config = DemoConfig(cell="gru", hidden_size=32, steps=10, train_steps=300, test_size=500)
    lines = []
    result = run_demo(config, log=lines.append)
    assert lines and "train mse" in lines[-1]
    # 1/6 is what "always predict the mean" scores; learning the task must beat it by far.
    assert result["test_mse"] < result["mean_predictor_mse"] / 10
