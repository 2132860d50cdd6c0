"""ASF skeleton parsing (io/asf.py): sections, units, dof orders and one-line errors."""

from pathlib import Path

import numpy as np
import pytest

from dynforecast.errors import InputError
from dynforecast.io.asf import parse_asf

ASF = """# a two-bone chain
:version 1.10
:name test
:units
  mass 1.0
  length 0.45
  angle deg
:root
  order TX TY TZ RX RY RZ
  axis XYZ
  position 0 0 0
  orientation 0 0 0
:bonedata
  begin
    id 1
    name upper
    direction 0 1 0
    length 2
    axis 0 0 90 XYZ
    dof rx ry rz
    limits (-180 180)
           (-180 180)
           (-180 180)
  end
  begin
    id 2
    name lower
    direction 1 0 0
    length 3
    axis 30 0 0 ZYX
    dof rz rx
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""


def test_parses_two_bone_chain():
    skeleton, notes = parse_asf(ASF, Path("t.asf"))
    assert skeleton.names == ("root", "upper", "lower")
    assert skeleton.parents.tolist() == [-1, 0, 1]
    assert skeleton.lengths.tolist() == [0.0, 2.0, 3.0]
    np.testing.assert_allclose(skeleton.axis_angles[1], [0, 0, np.pi / 2])
    assert skeleton.axis_orders[2].tolist() == [2, 1, 0]
    assert skeleton.dofs == (("tx", "ty", "tz", "rx", "ry", "rz"), ("rx", "ry", "rz"), ("rz", "rx"))
    assert skeleton.length_scale == 0.45 and skeleton.angle_unit == "deg"
    assert skeleton.n_dofs == 11 and notes == []


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (":hierarchy", ":nothing", "t.asf: no ':hierarchy' section (not an ASF skeleton?)"),
        (
            "dof rz rx",
            "dof rz rw",
            "t.asf: line 31: 'dof': unknown dof 'rw' (use rx ry rz tx ty tz l)",
        ),
        ("length 3", "length three", "t.asf: line 29: 'length': non-numeric value in 'three'"),
        ("upper lower", "upper lowr", "t.asf: line 36: ':hierarchy' names unknown bone 'lowr'"),
        (
            "angle deg",
            "angle grad",
            "t.asf: line 7: ':units angle' must be deg or rad (got 'grad')",
        ),
    ],
)
def test_errors_name_file_and_line(old, new, message):
    with pytest.raises(InputError) as caught:
        parse_asf(ASF.replace(old, new), Path("t.asf"))
    assert str(caught.value) == message


def test_a_direction_that_is_not_a_unit_vector_is_rescaled_with_a_note():
    skeleton, notes = parse_asf(ASF.replace("direction 1 0 0", "direction 2 0 0"), Path("t.asf"))
    np.testing.assert_allclose(skeleton.directions[2], [1, 0, 0])
    assert skeleton.lengths[2] == 3.0
    assert [(n.kind, n.count) for n in notes] == [("renormalised_directions", 1)]
    assert notes[0].detail == (
        "1 bone with a direction that is not a unit vector; scaled to unit length "
        "(the bone's length is its 'length')"
    )
