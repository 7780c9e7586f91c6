"""Structured pruning by block removal, as BK-SDM does: a student UNet with the teacher's innermost stage(s), its
mid block and the down path's attention at the new innermost stage removed, initialised from the teacher's weights.

On the bundled UNet (block_out_channels 32, 64, 128) this keeps 48% of the MACs per pass and 16% of the parameters.
Distil it with `training.distill --student OUT --feature-weight 1` (BK-SDM's output- and feature-level losses).
Torch-Pruning's channel pruning was tried first: on this diffusers UNet it prunes attention, feed-forward and
residual widths unevenly (e.g. a 114-wide GEGLU), which no `UNet2DConditionModel` config can describe, so the
result could not be saved as a diffusers folder or served by the app.

    python -m training.prune --teacher models/bundled/text_to_image --out runs/pruned
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from .common import command_line
from .diffusion import init_from_teacher
from .macs import unet_macs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="models/bundled/text_to_image", help="a diffusers text-to-image folder")
    parser.add_argument("--out", default="runs/pruned", help="where the pruned UNet folder goes (OUT/unet)")
    parser.add_argument("--remove-stages", type=int, default=1, help="innermost stages removed")
    return parser.parse_args(argv)


def removed_blocks_config(config: dict, remove_stages: int) -> dict:
    """The teacher's UNet config less its innermost stages, its mid block and the new innermost down attention."""
    levels = len(config["block_out_channels"]) - remove_stages
    if levels < 1:
        raise ValueError(f"`--remove-stages` must leave at least one stage of {len(config['block_out_channels'])}.")
    down = [*config["down_block_types"][:levels]]
    down[-1] = "DownBlock2D"  # its attention goes with the removed blocks
    return {**config, "block_out_channels": config["block_out_channels"][:levels], "down_block_types": down,
            "up_block_types": config["up_block_types"][remove_stages:], "mid_block_type": None}  # fmt: skip


def main(argv=None) -> dict:
    args = parse_args(argv)
    teacher = UNet2DConditionModel.from_pretrained(Path(args.teacher, "unet"), use_safetensors=True)
    student = UNet2DConditionModel.from_config(removed_blocks_config(dict(teacher.config), args.remove_stages))
    copied = init_from_teacher(student, teacher, args.remove_stages)
    student.save_pretrained(Path(args.out, "unet"))
    facts = {
        "command": command_line("training.prune", argv),
        "method": "BK-SDM block removal: innermost stage(s), mid block, new innermost down attention",
        "teacher MACs per pass": unet_macs(teacher), "student MACs per pass": unet_macs(student),
        "teacher parameters": sum(p.numel() for p in teacher.parameters()),
        "student parameters": sum(p.numel() for p in student.parameters()),
        "weights copied from the teacher": round(copied, 4),
    }  # fmt: skip
    Path(args.out, "pruning.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(json.dumps(facts))
    return facts


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
