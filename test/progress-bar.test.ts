// The CLI's download progress renderer (lib/progress-bar.ts), driven like loadModel's onProgress.
import { describe, expect, it } from 'vitest';
import { ProgressBar, render } from '../lib/progress-bar';

function sink(isTTY: boolean) {
  const out: string[] = [];
  return { out, stream: { isTTY, columns: 80, write: (s: string) => out.push(s) } };
}

describe('progress bar', () => {
  it('renders percentage, bar and sizes within the terminal width', () => {
    const line = render({ file: 'model.safetensors', loaded: 43_200_000, total: 86_400_000 }, 80);
    expect(line).toMatch(/^model\.safetensors\s+50% \|█+░+\| 43\.2\/86\.4 MB$/);
    expect(line.length).toBeLessThan(80);
    expect(render({ file: 'x', loaded: 1_500_000, total: undefined }, 80)).toBe('x  1.5 MB');
    expect(render({ file: 'a'.repeat(100), loaded: 1, total: 2 }, 40).length).toBeLessThan(40);
  });

  it('on a TTY redraws one line per file, throttled, ending each with a newline', () => {
    let t = 0;
    const { out, stream } = sink(true);
    const bar = new ProgressBar(stream, () => t);
    bar.update({ file: 'config.json', loaded: 0, total: 10 });
    bar.update({ file: 'config.json', loaded: 10, total: 10 });
    bar.update({ file: 'model.bin', loaded: 0, total: 1000 });
    t += 10;
    bar.update({ file: 'model.bin', loaded: 500, total: 1000 }); // throttled
    t += 200;
    bar.update({ file: 'model.bin', loaded: 600, total: 1000 });
    bar.update({ file: 'model.bin', loaded: 1000, total: 1000 });
    bar.done();
    const text = out.join('');
    expect(text.split('\n').filter(Boolean).length).toBe(2);
    expect(text).not.toMatch(/ 50%/);
    expect(text).toMatch(/ 60%/);
    expect(text).toMatch(/model\.bin 100%/);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('elsewhere prints start and end lines only', () => {
    const { out, stream } = sink(false);
    const bar = new ProgressBar(stream);
    for (let i = 0; i <= 10; i++) bar.update({ file: 'model.bin', loaded: i * 100, total: 1000 });
    expect(out).toEqual(['downloading model.bin (0.0 MB)\n', 'downloaded model.bin\n']);
  });
});
