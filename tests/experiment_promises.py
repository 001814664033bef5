"""What each script under experiments/ must print on its `--smoke` run (tests/test_script_smoke.py runs them)."""

from __future__ import annotations

N = r"\d+\.\d+"  # a printed figure
TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")

# what each script's --smoke output must hold (regular expressions, searched line by line)
PROMISES: dict[str, list[str]] = {
    # the scorer reads every ground-truth render right: the render column is 1.000 throughout
    "autoencoder_ceiling": [rf"shapes-xl: 6 suite scenes, reconstruction PSNR {N} dB$",
                            *(rf"^\| {t} \| 1\.000 \| {N} \|$" for t in (*TASKS, "overall"))],
    "composer_alone": [rf"^1 detailed prompts \(\d+ objects\), composer omost-tiny, seed 4242, {N} s/program$",
                       rf'^ "parse_rate": {N},?$', rf'^ "exact": {N},?$',
                       r"^1 position prompts .*composer omost-tiny", rf'^ "relation_right": {N},?$',
                       r"^1 counting prompts .*composer omost-tiny", rf'^ "count_right": {N},?$',
                       r"^1 prompts of .*dev_prompts.jsonl, composer omost-tiny, seed 4242: programs meeting the line$",
                       r'^ "position": "[01]/1 = [01]\.000"$'],
    "noun_attention": [r"shapes-xl: share of each shape noun's attention inside its objects \(2 scenes\)$",
                       rf"^\| 500 \| {N} \| {N} \| {N} \|$", rf"^\| area \(even spread\) \| {N} \| {N} \| {N} \|$"],
    "paella_sampler": [r"^paella-tiny: 1 development lines \(seed 777\), 1 image each from seed 50000, 2 steps$",
                       r"^\| temperature \| guidance \| single_object \| overall \|$",
                       rf"^\| 1\.0, 0\.3 \| 3 \| {N} \| {N} \|$", rf"^\| 1\.0, 0\.3 \| 6 \| {N} \| {N} \|$"],
    "paella_token_loss": [r"paella-tiny: 4 fresh scenes \(seed 7000000\)",
                          r"^\| t \| own \| empty \| another scene's \|$",
                          *(rf"^\| {t} \| {N} / {N} \| {N} / {N} \| {N} / {N} \|$" for t in ("0.5", "1"))],
    "presample_world": [r"^2 one-tag prompts, shapes-xl, presampler tipo-tiny, .*, 2 steps$",
                        *(rf"^{k} +{N} +{N}$" for k in ("count", "color", "place", "user object found")),
                        rf"^expansions valid {N}, keep the user's object {N}$"],
    "quality_vs_steps": [r"^paella-tiny, 6 suite lines, 1 image each, seed 0$",
                         r"^\| steps \| " + r" \| ".join(TASKS) + r" \| overall \| s/image \|$",
                         *(rf"^\| {n} \|( {N} \|){{8}}$" for n in (1, 2))],
    "renderer_alone": [r"^1 scenes \(\d+ objects\), shapes-xl, positionless programs, 2 steps$",
                       *(rf"^{m} +in box {N} +drawn anywhere {N} +in box of drawn {N}$"
                         for m in ("omost", "couple", "off")),
                       rf"^chance +in box {N}$"],
    # the teacher as its own student: its output error is 0 at every timestep
    "student_fidelity": [r"^teacher shapes-xl; 2 held-out scenes",
                         r"^\| timestep \| shapes-koala \| shapes-xl \| shapes-xl / shapes-koala \|$",
                         *(rf"^\| {t} \| {N} \| 0\.0000 \| {N} \(geo {N}, se log {N}\) \|$"
                           for t in (100, 300, 500, 700, 900, "all"))],
    "terminal_snr_leak": [r"^shapes-xl: v_prediction, zero terminal SNR True, 4 renders, no text$",
                          *(rf"^t= *{t} +sqrt\(alpha_bar\)={N} +corr\(true, predicted means\)=-?{N}$"
                            for t in (999, 500))],
    "vqgan_configs": [r"^\| vq config \| params \| s/step \| PSNR \| continuous \| codes used \| same objects \|$",
                      rf"^\| c_hidden=16 \| [\d,]+ \| {N} \| {N} \| {N} \| \d+ \| {N} \|$",
                      rf"^\| c_hidden=16,quantise=0 \| [\d,]+ \| {N} \| - \| {N} \| - \| {N} \|$",
                      rf"^\| linear: PCA of 4x4 patches, 4 components \| [\d,]+ \| - \| - \| {N} \| - \| {N} \|$",
                      rf"^\| shapes-xl's VAE architecture, plain autoencoder \| [\d,]+ \| {N} \| - \| {N} \| - "
                      rf"\| {N} \|$"],
    "vqgan_reconstruction": [rf"^3 scenes: PSNR {N} dB \(min {N}\), same objects detected {N}$"],
    # the scorer's own baselines: ground truth scores 1, blank and noise images 0
    # ground-truth renders hold exactly what their prompts name
    "stray_objects": [r"^\| folder \| task \| images \| unnamed object \| extra copies \|$",
                      *(rf"^\| ground-truth \| {t} \| \d+ \| 0\.000 \| 0\.000 \|$" for t in ("two_object", "position",
                                                                                       "color_attr", "all"))],
    "world_scorer_baselines": [r"^ground-truth +overall 1\.000 ", r"^blank +overall 0\.000 ",
                               r"^noise +overall 0\.000 "],
}
