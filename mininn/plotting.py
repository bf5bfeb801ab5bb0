"""The few figure types the book repeats, drawn in one consistent style.

Every function draws on the matplotlib axes ``ax`` it is given (or on the current
axes when ``ax`` is None) and returns those axes, so figures can be composed with
``plt.subplots``. Curvature matrices use a diverging colour map centred at 0, so
that positive entries are red, negative entries blue and zeros white.
:func:`slider_figure` turns a figure that depends on one parameter into frames with a
slider, for the static pages of the book.
"""

import base64
import html
import io

import numpy as np

from .errors import ArgumentError, ShapeError
from .validation import one_of

#: Diverging colour map of matrices whose entries have both signs (white at 0).
DIVERGING_CMAP = "RdBu_r"

#: Colour map of matrices drawn with ``symmetric=False`` (data limits, no centre).
SEQUENTIAL_CMAP = "viridis"

#: Colour of the lines drawn at layer boundaries in a heatmap.
BOUNDARY_COLOR = "0.2"

#: Colours of positive, zero and negative eigenvalues in :func:`spectrum`.
POSITIVE_COLOR = "tab:blue"
ZERO_COLOR = "0.6"
NEGATIVE_COLOR = "tab:red"

#: Labels of the x-axis of :func:`loss_curves`, one per choice of ``x``.
LOSS_CURVE_AXES = {"step": "step", "time": "wall time (s)", "evaluations": "evaluations"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def matrix_heatmap(matrix, layout=None, ax=None, title=None, symmetric=True, colorbar=True):
    """Draw a matrix as an image, with thin lines between the layers of a network.

    Parameters
    ----------
    matrix : ndarray of shape (m, n)
        The matrix, e.g. a Hessian over the flat parameter vector.
    layout : ParameterLayout, optional
        If given (``model.layout``), lines are drawn between the parameters of
        consecutive layers, at ``layout.boundaries``, and the ticks name the layers.
        The matrix must then be N x N with N the layout's number of parameters.
    ax : matplotlib Axes, optional
        Where to draw; the current axes by default.
    title : str, optional
        Title of the axes.
    symmetric : bool
        If True, a diverging colour map with limits ``-m`` and ``m``, m the largest
        absolute entry, so that 0 is white. If False, a sequential colour map
        spanning the smallest to the largest entry.
    colorbar : bool
        Add a colour bar next to the axes.

    Returns
    -------
    matplotlib Axes
        The axes drawn on.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ShapeError(f"matrix must be 2-D, got shape {matrix.shape}")
    ax = _axes(ax)
    if symmetric:
        limit = float(np.max(np.abs(matrix))) if matrix.size else 0.0
        limit = limit if limit > 0 else 1.0
        vmin, vmax, cmap = -limit, limit, DIVERGING_CMAP
    else:
        vmin, vmax, cmap = float(np.min(matrix)), float(np.max(matrix)), SEQUENTIAL_CMAP
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.grid(False)  # grid lines (e.g. rcParams["axes.grid"]) would hide entries
    if layout is not None:
        n = layout.num_params
        if matrix.shape != (n, n):
            raise ShapeError(f"matrix has shape {matrix.shape}, but the layout has {n} parameters")
        for boundary in layout.boundaries[1:-1]:
            ax.axhline(boundary - 0.5, color=BOUNDARY_COLOR, linewidth=0.8)
            ax.axvline(boundary - 0.5, color=BOUNDARY_COLOR, linewidth=0.8)
        centres = [(layer.params.start + layer.params.stop - 1) / 2 for layer in layout]
        labels = [f"layer {layer.index + 1}" for layer in layout]
        ax.set_xticks(centres, labels)
        ax.set_yticks(centres, labels, rotation=90, va="center")
        ax.tick_params(length=0)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    if title is not None:
        ax.set_title(title)
    return ax


def _curve(name, record, x):
    """(x values, losses) of one entry of :func:`loss_curves`."""
    if hasattr(record, "loss"):
        loss = np.asarray(record.loss, dtype=float)
        if x == "step":
            return np.arange(len(loss)), loss
        if x == "time":
            return np.asarray(record.wall_time, dtype=float), loss
        counts = [np.asarray(values, dtype=float) for values in record.evaluations.values()]
        return np.sum(counts, axis=0) if counts else np.zeros(len(loss)), loss
    if isinstance(record, tuple) and len(record) == 2:
        xs, loss = (np.asarray(part, dtype=float) for part in record)
        if xs.shape != loss.shape or xs.ndim != 1:
            raise ShapeError(f"{name!r}: x values {xs.shape} and losses {loss.shape} must be equal 1-D")
        return xs, loss
    loss = np.asarray(record, dtype=float)
    if loss.ndim != 1:
        raise ShapeError(f"{name!r}: losses must be 1-D, got shape {loss.shape}")
    if x != "step":
        raise ArgumentError(
            f"{name!r} is a plain array of losses, which has no {x!r}: pass a History "
            "or an (x values, losses) pair"
        )
    return np.arange(len(loss)), loss


def loss_curves(histories, x="step", ax=None, log=True):
    """Draw one loss curve per training run.

    Parameters
    ----------
    histories : dict
        Maps a legend label to a :class:`~mininn.train.History`, to a 1-D array
        of losses (one per step) or to a pair ``(x values, losses)``.
    x : str
        "step" (the step index, from 0), "time" (wall time in seconds at the end
        of each step) or "evaluations" (the cumulative number of counted
        evaluations -- values, gradients and curvature products, each counted
        once -- at the end of each step). Plain arrays only support "step".
    ax : matplotlib Axes, optional
        Where to draw; the current axes by default.
    log : bool
        Use a logarithmic loss axis.

    Returns
    -------
    matplotlib Axes
        The axes drawn on, with one line per entry of ``histories`` in order.
    """
    one_of("x", x, sorted(LOSS_CURVE_AXES))
    ax = _axes(ax)
    for name, record in histories.items():
        xs, loss = _curve(name, record, x)
        ax.plot(xs, loss, label=str(name), linewidth=1.5)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(LOSS_CURVE_AXES[x])
    ax.set_ylabel("loss")
    ax.grid(True, which="major", alpha=0.3)
    if histories:
        ax.legend()
    return ax


def spectrum(eigenvalues, ax=None, tolerance=None, linthresh=None, title=None):
    """Draw eigenvalues in increasing order on a symmetric-log axis, negative ones highlighted.

    Eigenvalues within ``tolerance`` of 0 are drawn in grey as zeros, the others in
    blue (positive) or red (negative); the legend gives the three counts.

    Parameters
    ----------
    eigenvalues : ndarray of shape (n,)
        The eigenvalues, in any order (e.g. from ``numpy.linalg.eigvalsh``).
    ax : matplotlib Axes, optional
        Where to draw; the current axes by default.
    tolerance : float, optional
        Eigenvalues with absolute value at most this count as zero. By default
        ``n * eps * max |eigenvalue|``, eps the float64 machine epsilon (the
        tolerance of ``numpy.linalg.matrix_rank``).
    linthresh : float, optional
        Half-width of the linear region of the symmetric-log axis around 0. By
        default the power of ten at or below a millionth of the largest absolute
        eigenvalue.
    title : str, optional
        Title of the axes.

    Returns
    -------
    matplotlib Axes
        The axes drawn on.
    """
    values = np.sort(np.asarray(eigenvalues, dtype=float).ravel())
    ax = _axes(ax)
    largest = float(np.max(np.abs(values))) if len(values) else 0.0
    if tolerance is None:
        tolerance = len(values) * np.finfo(float).eps * largest
    if linthresh is None:  # a power of ten, so that the ticks next to 0 are well apart
        linthresh = 10.0 ** np.floor(np.log10(1e-6 * largest)) if largest > 0 else 1.0
    index = np.arange(1, len(values) + 1)
    negative = values < -tolerance
    positive = values > tolerance
    zero = ~(negative | positive)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    for mask, color, name in [(positive, POSITIVE_COLOR, "positive"), (zero, ZERO_COLOR, "zero"),
                              (negative, NEGATIVE_COLOR, "negative")]:
        ax.plot(index[mask], values[mask], ".", color=color, label=f"{name} ({int(np.sum(mask))})")
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xlabel("index (increasing order)")
    ax.set_ylabel("eigenvalue")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return ax


def density(grid, density, ax=None, log=True, label=None):
    """Draw an eigenvalue density (e.g. from ``mininn.linalg.spectral_density``).

    Parameters
    ----------
    grid : ndarray of shape (p,)
        Eigenvalues at which the density is given, increasing.
    density : ndarray of shape (p,)
        Density values on the grid.
    ax : matplotlib Axes, optional
        Where to draw; the current axes by default.
    log : bool
        Use a logarithmic density axis (the bulk and the outliers of a Hessian
        spectrum differ by orders of magnitude).
    label : str, optional
        Legend label of the curve.

    Returns
    -------
    matplotlib Axes
        The axes drawn on.
    """
    grid = np.asarray(grid, dtype=float)
    values = np.asarray(density, dtype=float)
    if grid.shape != values.shape or grid.ndim != 1:
        raise ShapeError(f"grid {grid.shape} and density {values.shape} must be equal 1-D arrays")
    ax = _axes(ax)
    (line,) = ax.plot(grid, values, linewidth=1.5, label=label)
    ax.fill_between(grid, values, color=line.get_color(), alpha=0.2)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.grid(True, which="major", alpha=0.3)
    if label is not None:
        ax.legend()
    return ax


# Shows the frame the slider selects and hides the others; updates the value shown next to
# the slider. An inline handler, so that the output needs no <script> and no element ids.
_SLIDER_ONINPUT = (
    "const frames = this.closest('.mininn-slider').querySelectorAll('img');"
    " frames.forEach((img, i) => { img.style.display = i == this.value ? '' : 'none'; });"
    " this.parentElement.querySelector('output').textContent = frames[this.value].dataset.value;"
)


class SliderFigure:
    """Frames of one figure, one per parameter value, shown with a slider (see :func:`slider_figure`).

    In a notebook and in the built book it displays as HTML: the frame of ``values[start]``
    and an ``<input type="range">`` that selects the others. The frames are embedded PNG
    images and the slider is one inline event handler: no server, no internet, no
    JavaScript library.

    Attributes
    ----------
    values : list
        The parameter values, in slider order.
    frames : list of bytes
        One PNG image per value.
    label : str
        Name of the parameter, shown next to the slider (plain text, e.g. "β").
    labels : list of str
        Each value as shown next to the slider.
    start : int
        Index of the frame shown first.
    """

    def __init__(self, values, frames, label, labels, start):
        self.values, self.frames, self.label, self.labels, self.start = values, frames, label, labels, start

    def __repr__(self):
        return f"SliderFigure({self.label}: {len(self.frames)} frames, {self.labels[0]} to {self.labels[-1]})"

    def _repr_html_(self):
        images = "\n".join(
            f'<img src="data:image/png;base64,{base64.b64encode(frame).decode("ascii")}" '
            f'alt="{html.escape(self.label)} = {html.escape(text)}" data-value="{html.escape(text)}" '
            f'style="max-width: 100%;{"" if i == self.start else " display: none;"}">'
            for i, (frame, text) in enumerate(zip(self.frames, self.labels))
        )
        return (
            '<div class="mininn-slider">\n'
            f'<div class="mininn-slider-frames">\n{images}\n</div>\n'
            f'<label class="mininn-slider-control">{html.escape(self.label)} = '
            f"<output>{html.escape(self.labels[self.start])}</output>\n"
            f'<input type="range" min="0" max="{len(self.frames) - 1}" step="1" value="{self.start}" '
            f'aria-label="{html.escape(self.label)}" oninput="{html.escape(_SLIDER_ONINPUT)}">\n'
            "</label>\n</div>"
        )


def _with_palette(png, colors):
    """The PNG image in ``png`` (a file object) re-encoded with a palette of ``colors`` colours."""
    from PIL import Image

    palette = Image.open(png).convert("RGB").quantize(colors)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def slider_figure(figure, draw, values, label, value_format="{:g}", start=0, dpi=80, colors=64):
    """Render a figure once per parameter value, for display with a slider.

    For each value, ``draw(value)`` redraws ``figure`` (clear its axes first, or update
    the artists it owns) and the figure is saved as a PNG frame. The figure is closed
    at the end, so that the notebook shows only the slider.

    Parameters
    ----------
    figure : matplotlib Figure
        The figure that ``draw`` draws on.
    draw : callable
        ``draw(value)`` draws the frame of one value; its return value is ignored.
    values : sequence
        The parameter values, in slider order; at least one.
    label : str
        Name of the parameter next to the slider, plain text (e.g. "β").
    value_format : str
        Format of each value next to the slider (``value_format.format(value)``).
    start : int
        Index into ``values`` of the frame shown first.
    dpi : float
        Resolution of the frames.
    colors : int or None
        Number of colours of each frame's palette (a line plot in 64 colours looks the same
        and its PNG is about three times smaller); None keeps full colour.

    Returns
    -------
    SliderFigure
        The frames; a notebook displays it as the slider figure.
    """
    import matplotlib.pyplot as plt

    values = list(values)
    if not values:
        raise ShapeError("values is empty: pass at least one parameter value for the slider")
    if not 0 <= start < len(values):
        raise ShapeError(f"start={start} is not an index into the {len(values)} values")
    frames = []
    try:
        for value in values:
            draw(value)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
            frames.append(buffer.getvalue() if colors is None else _with_palette(buffer, colors))
    finally:
        plt.close(figure)
    labels = [value_format.format(value) for value in values]
    return SliderFigure(values, frames, label, labels, start)
