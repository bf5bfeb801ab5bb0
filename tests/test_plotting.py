"""Tests of mininn.plotting: what each figure actually draws (Agg backend, no display)."""

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402
import html.parser  # noqa: E402
import io  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from mininn import MLP, History  # noqa: E402
from mininn.errors import ShapeError  # noqa: E402
from mininn.plotting import density, loss_curves, matrix_heatmap, slider_figure, spectrum  # noqa: E402


@pytest.fixture
def ax():
    figure, axes = plt.subplots()
    yield axes
    plt.close(figure)


def vertical_lines(ax):
    return sorted(line.get_xdata()[0] for line in ax.lines
                  if len(set(line.get_xdata())) == 1 and tuple(line.get_ydata()) == (0, 1))


def horizontal_lines(ax):
    return sorted(line.get_ydata()[0] for line in ax.lines
                  if len(set(line.get_ydata())) == 1 and tuple(line.get_xdata()) == (0, 1))


def test_heatmap_limits_are_symmetric_about_zero(ax):
    matrix = np.array([[3.0, -1.0], [-1.0, 0.5]])
    matrix_heatmap(matrix, ax=ax)
    (image,) = ax.images
    assert image.get_clim() == (-3.0, 3.0)
    np.testing.assert_array_equal(image.get_array(), matrix)


def test_heatmap_limits_follow_the_largest_negative_entry(ax):
    matrix_heatmap(np.array([[0.1, -7.0], [2.0, 0.0]]), ax=ax)
    assert ax.images[0].get_clim() == (-7.0, 7.0)


def test_heatmap_of_zero_matrix_has_nonempty_limits(ax):
    matrix_heatmap(np.zeros((3, 3)), ax=ax)
    vmin, vmax = ax.images[0].get_clim()
    assert vmin == -vmax and vmax > 0


def test_heatmap_non_symmetric_uses_data_limits(ax):
    matrix_heatmap(np.array([[1.0, 2.0], [3.0, 5.0]]), ax=ax, symmetric=False)
    assert ax.images[0].get_clim() == (1.0, 5.0)


def test_heatmap_draws_lines_at_inner_layer_boundaries(ax):
    model = MLP([2, 3, 4, 1])
    layout = model.layout
    n = model.num_params
    matrix_heatmap(np.eye(n), layout=layout, ax=ax, title="H")
    expected = [b - 0.5 for b in layout.boundaries[1:-1]]
    assert expected == [8.5, 24.5]
    assert vertical_lines(ax) == expected
    assert horizontal_lines(ax) == expected
    assert [t.get_text() for t in ax.get_xticklabels()] == ["layer 1", "layer 2", "layer 3"]
    assert ax.get_title() == "H"


def test_heatmap_without_layout_draws_no_lines(ax):
    matrix_heatmap(np.eye(4), ax=ax)
    assert len(ax.lines) == 0


def test_heatmap_rejects_matrix_of_wrong_size_for_layout(ax):
    with pytest.raises(ShapeError):
        matrix_heatmap(np.eye(5), layout=MLP([2, 3, 1]).layout, ax=ax)


def history_with(losses, times, grads):
    history = History(theta=np.zeros(1))
    for loss, time, grad in zip(losses, times, grads):
        counts = {"value": 0, "grad": grad, "hvp": 2 * grad, "ggn_vp": 0}
        history.record(np.zeros(1), {"loss": loss, "grad_norm": 1.0}, time, counts)
    return history


def test_loss_curves_draws_one_line_per_history_with_its_length(ax):
    runs = {
        "a": history_with([4.0, 2.0, 1.0], [0.1, 0.2, 0.3], [1, 2, 3]),
        "b": np.array([5.0, 4.0, 3.0, 2.0, 1.0]),
        "c": (np.array([0.0, 10.0]), np.array([1.0, 0.5])),
    }
    returned = loss_curves(runs, ax=ax)
    assert returned is ax
    assert [line.get_label() for line in ax.lines] == ["a", "b", "c"]
    assert [len(line.get_xdata()) for line in ax.lines] == [3, 5, 2]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [4.0, 2.0, 1.0])
    np.testing.assert_array_equal(ax.lines[2].get_xdata(), [0.0, 10.0])
    assert ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]


def test_loss_curves_time_and_evaluation_axes(ax):
    history = history_with([4.0, 2.0], [0.5, 1.5], [1, 2])
    loss_curves({"run": history}, x="time", ax=ax, log=False)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0.5, 1.5])
    assert ax.get_yscale() == "linear"
    assert ax.get_xlabel() == "wall time (s)"
    figure, other = plt.subplots()
    loss_curves({"run": history}, x="evaluations", ax=other)
    np.testing.assert_array_equal(other.lines[0].get_xdata(), [3, 6])
    plt.close(figure)


def test_loss_curves_refuses_time_for_plain_arrays(ax):
    with pytest.raises(ValueError, match="History"):
        loss_curves({"a": np.ones(3)}, x="time", ax=ax)
    with pytest.raises(ValueError, match="x must be"):
        loss_curves({"a": np.ones(3)}, x="epochs", ax=ax)


def test_spectrum_sorts_and_highlights_negative_eigenvalues(ax):
    values = np.array([3.0, -2.0, 0.0, 1e-3, -1e-5, 1e-17])
    spectrum(values, ax=ax)
    positive, zero, negative = [line for line in ax.lines if line.get_linestyle() == "None"]
    np.testing.assert_array_equal(negative.get_ydata(), [-2.0, -1e-5])
    np.testing.assert_array_equal(negative.get_xdata(), [1, 2])
    np.testing.assert_array_equal(zero.get_ydata(), [0.0, 1e-17])  # below 6 * eps * 3
    np.testing.assert_array_equal(positive.get_ydata(), [1e-3, 3.0])
    assert len({positive.get_color(), zero.get_color(), negative.get_color()}) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "positive (2)", "zero (2)", "negative (2)"]
    assert ax.get_yscale() == "symlog"


def test_spectrum_tolerance_decides_what_is_zero(ax):
    spectrum(np.array([-0.5, -1e-3, 1e-3, 1.0]), ax=ax, tolerance=1e-2)
    positive, zero, negative = [line for line in ax.lines if line.get_linestyle() == "None"]
    np.testing.assert_array_equal(zero.get_ydata(), [-1e-3, 1e-3])
    np.testing.assert_array_equal(negative.get_ydata(), [-0.5])


def test_density_draws_the_curve(ax):
    grid = np.linspace(-1.0, 1.0, 11)
    values = np.exp(-grid**2)
    density(grid, values, ax=ax, label="H")
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), values)
    assert ax.get_yscale() == "log"
    with pytest.raises(ShapeError):
        density(grid, values[:-1], ax=ax)


class Elements(html.parser.HTMLParser):
    """The start tags of an HTML fragment, as (tag, attributes) in document order."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def line_slider(values, **options):
    figure, ax = plt.subplots(figsize=(2, 1.5))
    drawn = []

    def draw(value):
        drawn.append(value)
        ax.clear()
        ax.plot([0, 1], [0, value])
        ax.set_ylim(0, 4)

    return slider_figure(figure, draw, values, **options), figure, drawn


def test_slider_figure_draws_one_png_frame_per_value_and_closes_the_figure():
    slider, figure, drawn = line_slider([1, 2, 3], label="a", dpi=40)
    assert drawn == [1, 2, 3]
    assert len(slider.frames) == 3 and len(set(slider.frames)) == 3  # three different pictures
    images = [Image.open(io.BytesIO(frame)) for frame in slider.frames]
    assert all(image.size == (80, 60) for image in images)  # 2 x 1.5 inches at 40 dpi
    assert all(image.mode == "P" and len(image.getcolors()) <= 64 for image in images)
    assert not plt.fignum_exists(figure.number)


def test_slider_frames_in_full_colour_show_the_same_picture_as_the_palette_frames():
    full, _, _ = line_slider([2], label="a", dpi=40, colors=None)
    palette, _, _ = line_slider([2], label="a", dpi=40)
    full_rgb = np.asarray(Image.open(io.BytesIO(full.frames[0])).convert("RGB"), dtype=float)
    palette_rgb = np.asarray(Image.open(io.BytesIO(palette.frames[0])).convert("RGB"), dtype=float)
    assert Image.open(io.BytesIO(full.frames[0])).mode == "RGBA"
    assert np.abs(full_rgb - palette_rgb).mean() < 2.0  # on a 0-255 scale


def test_slider_html_shows_the_start_frame_and_a_range_input_over_all_frames():
    slider, _, _ = line_slider([0.5, 1, 2], label="β <x>", value_format="{:.1f}", start=1)
    tags = Elements(slider._repr_html_()).tags
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert [base64.b64decode(img["src"].removeprefix("data:image/png;base64,")) for img in images] == \
        slider.frames
    assert [img["data-value"] for img in images] == ["0.5", "1.0", "2.0"]
    assert ["display: none" in img["style"] for img in images] == [True, False, True]
    (slider_input,) = [attrs for tag, attrs in tags if tag == "input"]
    assert (slider_input["type"], slider_input["min"], slider_input["max"], slider_input["value"]) == \
        ("range", "0", "2", "1")
    assert slider_input["aria-label"] == "β <x>"  # escaped in the HTML, intact once parsed
    assert "<x>" not in slider._repr_html_()
    assert "http" not in slider._repr_html_() and "<script" not in slider._repr_html_()
    assert repr(slider) == "SliderFigure(β <x>: 3 frames, 0.5 to 2.0)"


def test_slider_figure_rejects_no_values_and_a_start_outside_them():
    figure = plt.figure()
    with pytest.raises(ShapeError, match="at least one"):
        slider_figure(figure, lambda value: None, [], label="a")
    with pytest.raises(ShapeError, match="start=3"):
        slider_figure(figure, lambda value: None, [1, 2, 3], label="a", start=3)
    plt.close(figure)
