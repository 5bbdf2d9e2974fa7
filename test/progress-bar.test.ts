// The CLI's download progress renderer (lib/progress-bar.ts), driven like loadModel's onProgress.
import { describe, expect, it } from 'vitest';
import { CountBar, ProgressBar, render } from '../lib/progress-bar';

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

  it('counts (vitmsn enqueue --wait): a throttled bar on a TTY, a line every 2 s elsewhere, always the end', () => {
    let t = 0;
    const tty = sink(true);
    const bar = new CountBar(tty.stream, 'embedding', 'images', () => t);
    bar.update(0, 2000);
    t += 50;
    bar.update(500, 2000); // throttled
    t += 100;
    bar.update(1000, 2000, '1 job failed');
    bar.update(2000, 2000);
    const text = tty.out.join('');
    expect(text).not.toMatch(/500\/2000/);
    expect(text).toMatch(/\rembedding █+░+ 1000\/2000 images, 1 job failed/);
    expect(text).toMatch(/\rembedding █+ 2000\/2000 images\n$/);
    expect(text.split('\r').every((l) => l.length <= 80)).toBe(true);

    t = 0;
    const log = sink(false);
    const plain = new CountBar(log.stream, 'embedding', 'images', () => t);
    for (let i = 0; i <= 10; i++, t += 500) plain.update(i * 200, 2000);
    expect(log.out).toEqual([
      'embedding: 0/2000 images\n',
      'embedding: 800/2000 images\n',
      'embedding: 1600/2000 images\n',
      'embedding: 2000/2000 images\n',
    ]);
  });
});
