//! Inputs mutated at random from valid ones, the same on every run (xorshift64 from a
//! fixed seed): bytes cut, flipped, inserted, and tokens of the format spliced in.

pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed.max(1) }
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % n as u64) as usize
    }

    /// One of `seeds`, changed one to six times.
    pub fn mutate(&mut self, seeds: &[&[u8]], tokens: &[&[u8]]) -> Vec<u8> {
        let mut input = seeds[self.below(seeds.len())].to_vec();
        for _ in 0..1 + self.below(6) {
            let at = self.below(input.len() + 1);
            match self.below(4) {
                0 if at < input.len() => {
                    let end = (at + 1 + self.below(8)).min(input.len());
                    input.drain(at..end);
                }
                1 if at < input.len() => input[at] = self.below(256) as u8,
                2 => {
                    let noise: Vec<u8> = (0..1 + self.below(30))
                        .map(|_| self.below(256) as u8)
                        .collect();
                    input.splice(at..at, noise);
                }
                _ => {
                    let token = tokens[self.below(tokens.len())];
                    input.splice(at..at, token.iter().copied());
                }
            }
        }
        input
    }
}
